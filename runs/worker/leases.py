"""Giving a lease back: a leased run the worker will not start goes back in line at once.

The lifecycle lets leased → ready happen only once the lease has lapsed (the clock's move).
A holder that gives its lease up ends it now: one transaction first shortens the lease to this
instant, then makes the move, so the guard holds and no other executor waits for a lapse.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..exceptions import LeaseLost
from ..models import Run
from ..services import get_run
from ..states import RunState


def give_back(run_id: object, *, executor: str, reason: str) -> Run:
    """Return a leased, not yet started run to ready; `LeaseLost` if it is not ours to return."""
    with transaction.atomic():
        run = get_run(run_id)
        now = timezone.now()
        if run.state != RunState.LEASED or run.lease_owner != executor:
            raise LeaseLost(
                f"run {run.pk} is {run.state}"
                + (f" and leased to {run.lease_owner}" if run.lease_owner else "")
                + f"; executor {executor} cannot give it back",
                run_id=run.pk, current_state=run.state,
            )
        run.amend(actor=executor, now=now, lease_expires_at=now)
        return run.transition_to(RunState.READY, actor=executor, now=now, reason=reason)
