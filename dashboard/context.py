"""Template context every page shares: the state palette (one source: `runs.presentation`)
and which top-bar links this user may open."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.safestring import mark_safe

from runs.presentation import state_css

ADMIN_VIEW_PERMISSIONS = ("runs.view_run", "runs.change_run")


def may_open_admin(user: Any) -> bool:
    """Whether the admin would show this user something: staff with a run permission the
    admin honours (the action permissions alone open no admin page)."""
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False)
                and any(user.has_perm(name) for name in ADMIN_VIEW_PERMISSIONS))


def presentation(request: HttpRequest) -> dict[str, Any]:
    return {
        "state_css": mark_safe(state_css()),  # built from hex constants, no user input
        "may_open_admin": may_open_admin(getattr(request, "user", None)),
        "TIME_ZONE_NAME": settings.TIME_ZONE,
    }
