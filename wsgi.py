"""WSGI entry point: `gunicorn wsgi:app`."""

from mdfledger import create_app

app = create_app()
