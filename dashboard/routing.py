"""Websocket routes, relative to wherever the project mounts Runboard's URLs.

The pages connect to `reverse("board-socket")`, i.e. the HTTP prefix + `ws/board/`, so the
websocket must be routed under the same prefix as `include("dashboard.urls")`:

    URLRouter([path("runboard/", URLRouter(websocket_urlpatterns))])
    URLRouter(websocket_urls("runboard/"))      # the same, as one call
"""

from __future__ import annotations

from channels.routing import URLRouter
from django.urls import URLPattern, path

from .consumers import BoardConsumer

websocket_urlpatterns = [
    path("ws/board/", BoardConsumer.as_asgi()),
]


def websocket_urls(prefix: str = "") -> list[URLPattern]:
    """Runboard's websocket routes under `prefix` (the one given to `include("dashboard.urls")`,
    e.g. "runboard/"; "" at the root), for a project's websocket `URLRouter`."""
    if not prefix:
        return list(websocket_urlpatterns)
    return [path(prefix, URLRouter(websocket_urlpatterns))]
