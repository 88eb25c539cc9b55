"""Runboard's own settings: the `RUNBOARD` dict of the project's settings, every key optional.

A project that mounts Runboard need not define `RUNBOARD` at all; each caller names its
default where it reads the key.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def runboard_setting(name: str, default: Any) -> Any:
    """`settings.RUNBOARD[name]`, or `default` when the project does not set it."""
    return getattr(settings, "RUNBOARD", {}).get(name, default)
