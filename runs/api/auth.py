"""Who is calling: an executor with a bearer token, or an operator with a session.

A token acts as the executor it names. An operator's session works on the read and cancel
endpoints; its unsafe requests must carry the CSRF token, like every form of the dashboard.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from runs.tokens import ExecutorToken

from .errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ExecutorBearer(HttpBearer):
    """`Authorization: Bearer rbx_…` — an executor token (see `manage.py create_token`)."""

    def authenticate(self, request: HttpRequest, token: str) -> ExecutorToken:
        found = ExecutorToken.authenticate(token)
        if found is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid")
        if not found.is_active:
            raise ApiError(401, "token_revoked", f"token {found.masked} has been revoked")
        found.touch()
        return found


class OperatorSession(APIKeyCookie):
    """A logged-in dashboard user (Django session cookie); unsafe methods need CSRF."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        # `csrf` stays true so the interactive docs send the CSRF header, but the check runs in
        # authenticate(), and only for an authenticated session: a request with no credentials
        # at all must be a 401, not a CSRF 403.
        super().__init__(csrf=True)

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> AbstractBaseUser | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise ApiError(403, "csrf_failed",
                           "CSRF check failed: send the csrftoken cookie's value as X-CSRFToken")
        return user


executor_only = [ExecutorBearer()]
executor_or_operator = [ExecutorBearer(), OperatorSession()]


def actor_of(caller: Any) -> str:
    """The name recorded in the audit trail for this caller."""
    if isinstance(caller, ExecutorToken):
        return caller.name
    return caller.get_username()


def require_permission(caller: Any, permission: str) -> None:
    """Operators need the model permission; executor tokens are trusted machine credentials."""
    if isinstance(caller, ExecutorToken):
        return
    if not caller.has_perm(permission):
        raise ApiError(403, "forbidden", f"{caller.get_username()} lacks the {permission} "
                                         "permission")
