"""Settings for benchmarks/tasks.py: Runboard's settings plus django-tasks-db as a peer backend."""

from dashboard.settings import *  # noqa: F403
from dashboard.settings import INSTALLED_APPS, TASKS

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
TASKS = {**TASKS, "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
LOGGING = {"version": 1, "disable_existing_loggers": True,
           "root": {"handlers": [], "level": "WARNING"}}
