"""URLs of the machine-facing edge: the API under /api/."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, re_path

from . import api
from .errors import error_body


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown paths under /api/ answer in the API's error shape, not with an HTML page."""
    return JsonResponse(error_body(404, "not_found", f"no API endpoint at {request.path}"),
                        status=404)


def json_method_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """ninja answers a wrong method with an empty 405; give it the API's error shape."""

    @wraps(view)  # keeps ninja's csrf_exempt marker
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code != 405 or response.get("Content-Type", "").startswith(
                "application/json"):
            return response
        allowed = response.get("Allow", "")
        answer = JsonResponse(error_body(405, "method_not_allowed",
                                         f"{request.method} is not allowed here; use {allowed}"),
                              status=405)
        answer["Allow"] = allowed
        return answer

    return wrapped


api_patterns, ninja_app_name, api_namespace = api.urls  # not `app_name`: include() reads that
for pattern in api_patterns:
    if isinstance(pattern, URLPattern):
        pattern.callback = json_method_not_allowed(pattern.callback)

urlpatterns = [
    path("api/", (api_patterns, ninja_app_name, api_namespace)),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]
