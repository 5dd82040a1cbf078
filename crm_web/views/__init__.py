"""One blueprint per module; BLUEPRINTS is what create_app registers."""

from crm_web.views.account import bp as account
from crm_web.views.activities import bp as activities
from crm_web.views.auth import bp as auth
from crm_web.views.board import bp as board
from crm_web.views.companies import bp as companies
from crm_web.views.contacts import bp as contacts
from crm_web.views.dashboard import bp as dashboard
from crm_web.views.deals import bp as deals
from crm_web.views.duplicates import bp as duplicates
from crm_web.views.imports import bp as imports
from crm_web.views.internal import bp as internal
from crm_web.views.leads import bp as leads
from crm_web.views.live import bp as live
from crm_web.views.my_day import bp as my_day
from crm_web.views.notifications import bp as notifications
from crm_web.views.pipelines import bp as pipelines
from crm_web.views.saved_views import bp as saved_views
from crm_web.views.search import bp as search
from crm_web.views.settings import bp as settings
from crm_web.views.system import bp as system
from crm_web.views.tags import bp as tags
from crm_web.views.trash import bp as trash

BLUEPRINTS = [
    auth,
    system,
    dashboard,
    my_day,
    contacts,
    companies,
    leads,
    deals,
    duplicates,
    board,
    pipelines,
    activities,
    saved_views,
    trash,
    imports,
    tags,
    settings,
    account,
    search,
    internal,
    live,
    notifications,
]
