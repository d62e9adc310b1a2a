"""Celery workers: the Celery app and thin tasks that call app services."""
