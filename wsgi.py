"""WSGI entry point: `gunicorn wsgi:app` and `flask --app wsgi ...`."""

from crm_web import create_app, freeze_startup_objects

app = create_app()
freeze_startup_objects(app)
