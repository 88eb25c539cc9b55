"""The executor and submission HTTP API (django-ninja), mounted at /api/.

`api` is the NinjaAPI instance; `runs.api.urls` mounts it under /api/.
"""

from __future__ import annotations

from ninja.openapi.docs import Swagger

from . import errors
from .openapi import RunboardAPI
from .parser import StrictJSONParser
from .views_actions import router as actions_router
from .views_executors import router as executor_router
from .views_runs import router as runs_router

api = RunboardAPI(
    title="Runboard API",
    version="1",
    description=(
        "Submit runs, lease and report on them as an executor; read them, and cancel, "
        "suspend, resume, retry, rerun or replenish them as an operator. Executors "
        "authenticate with `Authorization: Bearer <token>` (see `manage.py create_token`); "
        "operators with their dashboard session (unsafe methods need the "
        "`X-CSRFToken` header). Every refusal is JSON: `{status, code, message, "
        "current_state?, field?, stop?}`."
    ),
    urls_namespace="api",
    parser=StrictJSONParser(),
    docs=Swagger(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
errors.install(api)
api.add_router("", runs_router)
api.add_router("", executor_router)
api.add_router("", actions_router)
