"""Runboard as a django.tasks backend: tasks are runs, `manage.py runboard_worker` runs them.

    from runs.tasks import RunboardBackend, RunboardContext   # TASKS["…"]["BACKEND"]
"""

from __future__ import annotations

from .backend import RUN_OPTIONS, RunboardBackend, RunboardTask
from .context import RunboardContext, RunStopped
from .results import STATUS_BY_STATE

__all__ = ["RUN_OPTIONS", "STATUS_BY_STATE", "RunStopped", "RunboardBackend", "RunboardContext",
           "RunboardTask"]
