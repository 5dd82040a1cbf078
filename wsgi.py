"""WSGI entry point: `gunicorn wsgi:app` and `flask --app wsgi ...`."""

from crm_web import create_app

app = create_app()
