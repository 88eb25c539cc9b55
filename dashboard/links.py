"""Where Runboard's pages and scripts send people, reversed from the URL conf.

Nothing in a template or script writes a path of its own: the project that mounts Runboard
chooses the prefix, and its `LOGIN_URL` says where to log in. Scripts get these through
`{% runboard_links %}` (a `json_script` in the base template) and fill in ids themselves.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse

# Scripts turn these templates into a run's URLs by replacing the placeholders.
RUN_ID_PLACEHOLDER = UUID(int=0)
ACTION_PLACEHOLDER = "__action__"


def login_url() -> str:
    """The project's `LOGIN_URL` (a path or a URL name), as a path."""
    return resolve_url(settings.LOGIN_URL)


def logout_url() -> str:
    """The project's logout view (Django's usual name, `logout`), or "" when it has none: the
    top bar then offers no button rather than a broken one."""
    try:
        return reverse("logout")
    except NoReverseMatch:
        return ""


def admin_url(viewname: str = "admin:index", *args: object) -> str:
    """An admin page's path, or "" when the project does not route the admin."""
    try:
        return reverse(viewname, args=args)
    except NoReverseMatch:
        return ""


def page_links() -> dict[str, str]:
    """Every path a Runboard script builds, for the page's `runboard-links` JSON."""
    return {
        "board": reverse("board"),
        "runList": reverse("run-list"),
        "run": reverse("run-detail", args=[RUN_ID_PLACEHOLDER]),
        "action": reverse("run-action", args=[RUN_ID_PLACEHOLDER, ACTION_PLACEHOLDER]),
        "socket": reverse("board-socket"),
        "login": login_url(),
        "runIdPlaceholder": str(RUN_ID_PLACEHOLDER),
        "actionPlaceholder": ACTION_PLACEHOLDER,
    }
