"""One error shape for the whole API, and the one place errors become HTTP.

Every refusal is JSON: `{"status", "code", "message"}` plus, where they apply, `current_state`
(the run's state now), `field` (which input was wrong), `errors` (all wrong inputs) and `stop`
(true when an executor must stop working on the run). Domain errors from `runs.exceptions` are
translated here, by their `code`, and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

from runs.conf import runboard_setting
from runs.exceptions import LeaseLost, RunError

if TYPE_CHECKING:
    from ninja import NinjaAPI

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# HTTP status of each domain error code (runs.exceptions); unknown codes are 409 conflicts.
STATUS_BY_CODE: dict[str, int] = {
    "not_found": 404,
    "invalid": 400,
    "not_allowed": 409,
    "conflict": 409,
    "transition_error": 409,
    "lease_lost": 409,
    "canceled": 409,
    "not_lease_holder": 403,
}

GENERIC_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    500: "internal_error",
}


class ApiError(Exception):
    """A refusal decided at the HTTP edge (authentication, permissions, request shape)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 current_state: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.current_state = field, current_state


class NotLeaseHolder(RunError):
    """A token acted on a run its executor never leased."""

    code = "not_lease_holder"


class UnacceptableJSON(ValueError):
    """The body parsed as JSON but holds values the database cannot store (NUL, NaN, …)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def max_body_bytes() -> int:
    return int(runboard_setting("API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def limit_body_size(api: NinjaAPI) -> Callable[[Callable], Callable]:
    """A view decorator that answers 413 before anything reads or parses an oversized body."""

    def decorator(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(run)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            cap = max_body_bytes()
            try:
                declared = int(request.headers.get("Content-Length") or 0)
            except ValueError:
                declared = 0
            too_big = declared > cap
            if not too_big and request.method in ("POST", "PUT", "PATCH"):
                try:  # chunked bodies carry no length: measure what arrived
                    too_big = len(request.body) > cap
                except RequestDataTooBig:
                    too_big = True
            if too_big:
                body = error_body(413, "body_too_large",
                                  f"the request body is larger than the {cap}-byte limit")
                return api.create_response(request, body, status=413)
            return run(request, *args, **kwargs)

        return checked

    return decorator


def _field_of(location: list[Any] | tuple[Any, ...]) -> str:
    # ninja locates errors as ("body", "<param>", "field", …) or ("query"|"path", "field", …)
    parts = list(location)
    if parts and parts[0] == "body":
        parts = parts[2:]
    elif parts:
        parts = parts[1:]
    return ".".join(str(part) for part in parts)


def _validation_error(request: HttpRequest, exc: ValidationError, api: NinjaAPI) -> HttpResponse:
    errors = [{"field": _field_of(e.get("loc", ())) or "body", "message": str(e.get("msg", ""))}
              for e in exc.errors]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    body = error_body(400, "invalid", f"{first['field']}: {first['message']}",
                      field=first["field"], errors=errors)
    return api.create_response(request, body, status=400)


def _api_error(request: HttpRequest, exc: ApiError, api: NinjaAPI) -> HttpResponse:
    body = error_body(exc.status, exc.code, exc.message, field=exc.field,
                      current_state=exc.current_state)
    response = api.create_response(request, body, status=exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="runboard"'
    return response


def _run_error(request: HttpRequest, exc: RunError, api: NinjaAPI) -> HttpResponse:
    status = STATUS_BY_CODE.get(exc.code, 409)
    body = error_body(status, exc.code, exc.message, current_state=exc.current_state,
                      field=getattr(exc, "field", None),
                      stop=True if isinstance(exc, LeaseLost) else None)
    return api.create_response(request, body, status=status)


def _http_error(request: HttpRequest, exc: HttpError, api: NinjaAPI) -> HttpResponse:
    status = exc.status_code
    cause = exc.__cause__
    if isinstance(exc, AuthenticationError):
        return _api_error(request, ApiError(401, "unauthorized", str(exc) if str(exc) !=
                                            "Unauthorized" else "authentication required: "
                                            "a bearer token or an operator session"), api)
    if status == 400 and isinstance(cause, UnacceptableJSON) and cause.field != "body":
        body = error_body(400, "invalid", f"{cause.field}: {cause}", field=cause.field)
        return api.create_response(request, body, status=400)
    if status == 400 and isinstance(cause, ValueError | RecursionError):
        detail = str(cause) if isinstance(cause, UnacceptableJSON | json.JSONDecodeError) else (
            "it is not valid UTF-8 JSON")
        body = error_body(400, "malformed_json", f"the request body is not acceptable JSON: "
                                                 f"{detail}", field="body")
        return api.create_response(request, body, status=400)
    body = error_body(status, GENERIC_CODES.get(status, "error"), str(exc))
    return api.create_response(request, body, status=status)


def _not_found(request: HttpRequest, exc: Http404, api: NinjaAPI) -> HttpResponse:
    return api.create_response(request, error_body(404, "not_found", "not found"), status=404)


def _unexpected(request: HttpRequest, exc: Exception, api: NinjaAPI) -> HttpResponse:
    # A bug, never bad input: log it with the traceback, answer without leaking it.
    logger.exception("API error on %s %s", request.method, request.path)
    body = error_body(500, "internal_error", "the server failed; the error was logged")
    return api.create_response(request, body, status=500)


def install(api: NinjaAPI) -> None:
    """Replace ninja's default handlers with ours (same shape for every refusal)."""

    def bind(handler: Callable[..., HttpResponse]) -> Callable[[HttpRequest, Any], HttpResponse]:
        return lambda request, exc: handler(request, exc, api)

    api.add_exception_handler(Exception, bind(_unexpected))
    api.add_exception_handler(Http404, bind(_not_found))
    api.add_exception_handler(HttpError, bind(_http_error))
    api.add_exception_handler(ValidationError, bind(_validation_error))
    api.add_exception_handler(ApiError, bind(_api_error))
    api.add_exception_handler(RunError, bind(_run_error))
    api.add_decorator(limit_body_size(api), mode="view")
