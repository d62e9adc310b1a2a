"""Celery tasks: like views, they take ids, open a session, call a service, and hold no logic."""
