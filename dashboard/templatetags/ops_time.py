"""Times on the Queues and Executors pages: absolute ones with seconds and the zone, relative
ones ("3 min 12 s ago") with the absolute time on hover and in `datetime` for machines."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.filter
def clock(value: datetime | None) -> str:
    """"2026-12-01 21:07:38 UTC" in the display time zone; "—" for no time."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


@register.filter
def span(value: timedelta | None) -> str:
    """A duration to the second: "4 s", "3 min 12 s", "2 h 05 min", "3 d 4 h"."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


@register.simple_tag
def ago(value: datetime | None, now: datetime) -> SafeString | str:
    """`<time>` saying how long ago `value` was, the absolute time in its title."""
    if value is None:
        return "—"
    return format_html('<time datetime="{}" title="{}">{} ago</time>', value.isoformat(),
                       clock(value), span(now - value))


@register.simple_tag
def until(value: datetime | None, now: datetime) -> SafeString | str:
    """`<time>` saying how long until `value` ("in 12 s", or "12 s ago" once past)."""
    if value is None:
        return "—"
    text = f"in {span(value - now)}" if value >= now else f"{span(now - value)} ago"
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(),
                       clock(value), text)
