"""Runboard's URLs, mountable anywhere: `path("runboard/", include("dashboard.urls"))` in a
host project, or at the root of the standalone site (`dashboard.site_urls`).

Every link the pages and scripts follow is reversed from these names (`dashboard.links`), so
the prefix a project chooses is the only place it is written. Login and the admin belong to
the project that mounts Runboard, not here.
"""

from django.urls import include, path

from . import views
from .health import healthz
from .metrics import metrics

urlpatterns = [
    path("", include("dashboard.history.urls")),  # history/, board/at, runs/errors/
    path("runs/", include("dashboard.runpage.urls")),
    path("", include("dashboard.ops.urls")),  # queues/, executors/
    path("", include("runs.api.urls")),  # api/… (executor HTTP API)
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    # The websocket lives at this path under the same prefix (`dashboard.routing`); the HTTP
    # route only names it, so pages can `reverse()` where to connect.
    path("ws/board/", views.socket_over_http, name="board-socket"),
    path("", include("dashboard.board_urls")),
]
