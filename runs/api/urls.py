"""URLs of the machine-facing edge: the API under /api/ and the health check."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path

from runs.health import healthz

from . import api
from .errors import error_body


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown paths under /api/ answer in the API's error shape, not with an HTML page."""
    return JsonResponse(error_body(404, "not_found", f"no API endpoint at {request.path}"),
                        status=404)


urlpatterns = [
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("healthz", healthz, name="healthz"),
]
