"""Who may open the admin from Runboard's pages (the top bar, the run page)."""

from __future__ import annotations

from typing import Any

ADMIN_VIEW_PERMISSIONS = ("runs.view_run", "runs.change_run")


def may_open_admin(user: Any) -> bool:
    """Whether the admin would show this user something: staff with a run permission the
    admin honours (the action permissions alone open no admin page)."""
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False)
                and any(user.has_perm(name) for name in ADMIN_VIEW_PERMISSIONS))
