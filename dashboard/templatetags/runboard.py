"""What every Runboard page needs from the server, as tags rather than a context processor, so
a project that mounts Runboard adds nothing to its `TEMPLATES` settings."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.utils.html import json_script
from django.utils.safestring import SafeString, mark_safe

from runs.presentation import state_css

from ..context import may_open_admin
from ..links import admin_url, login_url, logout_url, page_links

register = template.Library()


@register.simple_tag
def runboard_state_css() -> SafeString:
    """The one state palette as CSS custom properties (`runs.presentation`)."""
    return mark_safe(state_css())  # built from hex constants, no user input


@register.simple_tag
def runboard_time_zone() -> str:
    """The display zone, named on every page for times.js."""
    return settings.TIME_ZONE


@register.simple_tag
def runboard_links() -> SafeString:
    """The paths scripts follow, under whatever prefix the project mounted Runboard at."""
    return json_script(page_links(), "runboard-links")


@register.simple_tag
def runboard_login_url() -> str:
    return login_url()


@register.simple_tag
def runboard_logout_url() -> str:
    return logout_url()


@register.simple_tag(takes_context=True)
def runboard_admin_url(context: dict[str, Any], viewname: str = "admin:index",
                       *args: object) -> str:
    """An admin link for users the admin would show something, "" otherwise (also when the
    project routes no admin)."""
    request = context.get("request")
    if not may_open_admin(getattr(request, "user", None)):
        return ""
    return admin_url(viewname, *args)
