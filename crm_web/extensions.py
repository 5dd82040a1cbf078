"""Extensions, created unbound and bound to the app in create_app."""

from flask_caching import Cache
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from crm_web.models.base import Base
from crm_web.replica import RoutingSession

# expire_on_commit=False: a service returns objects a template can render without a reload query.
# RoutingSession sends the read-only pages' SELECTs to DATABASE_REPLICA_URL when set (crm_web/replica.py).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False, "class_": RoutingSession})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
cache = Cache()
limiter = Limiter(key_func=get_remote_address)  # storage: RATELIMIT_STORAGE_URI (Redis when configured)
