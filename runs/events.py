"""The one announcement the domain makes: `run_changed`, sent after a write commits.

Subscribers (the dashboard's fan-out hub) receive `event=` a plain, JSON-ready dict:

    {"id": "<uuid>", "version": 7, "from": "leased", "to": "running",
     "kind": "transition" | "update" | "created",
     "at": "<iso8601>", "actor": "exec-3", "reason": "",
     "run": {...Run.live_data(): everything a card shows, no payload/result...}}

It carries all a board needs, so no subscriber queries per event. `from == to` for updates that
change no state (heartbeats, budget changes); `from` is None when a run is created. A failing
subscriber is logged and never affects the write, which has already committed.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

run_changed = Signal()


def announce(event: dict[str, Any]) -> None:
    """Send `run_changed` to every subscriber, logging (never raising) their failures."""
    for receiver, response in run_changed.send_robust(sender=None, event=event):
        if isinstance(response, Exception):
            logger.error(
                "run_changed subscriber %r failed for run %s v%s",
                receiver,
                event.get("id"),
                event.get("version"),
                exc_info=response,
            )
