"""Each data guard on top of the table refuses its move when its condition does not hold, and
allows it once the condition holds (judged against the `now` passed in)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.exceptions import TransitionNotAllowed
from runs.states import RunState
from tests.runs.conftest import audit, row

S = RunState
SECOND = timedelta(seconds=1)


def refused_cases(now: Any) -> list[tuple[str, RunState, dict[str, Any], RunState, dict[str, Any]]]:
    """(why, source, run fields, target, transition_to arguments) for every refusing guard."""
    return [
        ("not yet scheduled", S.SCHEDULED, {"scheduled_at": now + SECOND}, S.READY, {}),
        ("lease without owner", S.READY, {}, S.LEASED, {"lease_expires_at": now + 30 * SECOND}),
        ("lease without expiry", S.READY, {}, S.LEASED, {"lease_owner": "e1"}),
        ("lease already expired", S.READY, {}, S.LEASED,
         {"lease_owner": "e1", "lease_expires_at": now}),
        ("start on an expired lease", S.LEASED, {"lease_expires_at": now}, S.RUNNING, {}),
        ("hand back a lease still held", S.LEASED, {"lease_expires_at": now + SECOND},
         S.READY, {}),
        ("retry with no attempt left", S.RUNNING, {"attempts": 3, "max_attempts": 3},
         S.RETRY_WAIT, {}),
        ("suspend without a reason", S.RUNNING, {}, S.SUSPENDED, {"reason": ""}),
        ("retry before the backoff ends", S.RETRY_WAIT, {"next_attempt_at": now + SECOND},
         S.READY, {}),
        ("fail a retry wait with retries left", S.RETRY_WAIT,
         {"attempts": 1, "max_attempts": 3}, S.FAILED, {}),
    ]


CASE_NAMES = [case[0] for case in refused_cases(timezone.now())]


@pytest.mark.django_db
@pytest.mark.parametrize("case", range(len(CASE_NAMES)), ids=CASE_NAMES)
def test_a_guard_refuses_its_move_and_writes_nothing(make_run, now, case):
    why, source, fields, target, arguments = refused_cases(now)[case]
    run = make_run(source, **fields)
    before = row(run.pk)

    with pytest.raises(TransitionNotAllowed) as refused:
        run.transition_to(target, now=now, **arguments)

    assert f"is {source.value}; cannot move to {target.value}" in str(refused.value), why
    assert row(run.pk) == before
    assert audit(run.pk) == []


@pytest.mark.django_db
def test_a_scheduled_run_becomes_ready_once_its_time_has_come(make_run, now):
    run = make_run(S.SCHEDULED, scheduled_at=now + 10 * SECOND)
    with pytest.raises(TransitionNotAllowed):
        run.transition_to(S.READY, now=now)
    assert run.transition_to(S.READY, now=now + 10 * SECOND).state == S.READY


@pytest.mark.django_db
def test_a_backoff_ends_at_next_attempt_at(make_run, now):
    run = make_run(S.RETRY_WAIT, next_attempt_at=now + 5 * SECOND)
    with pytest.raises(TransitionNotAllowed):
        run.transition_to(S.READY, now=now + 4 * SECOND)
    moved = run.transition_to(S.READY, now=now + 5 * SECOND)
    assert moved.state == S.READY and moved.next_attempt_at is None


@pytest.mark.django_db
def test_a_lapsed_lease_goes_back_to_ready_and_is_cleared(make_run, now):
    run = make_run(S.LEASED, lease_expires_at=now + 5 * SECOND)
    moved = run.transition_to(S.READY, now=now + 5 * SECOND, actor="clock")
    assert (moved.lease_owner, moved.lease_expires_at) == ("", None)


@pytest.mark.django_db
def test_fields_that_do_not_belong_to_the_target_state_are_refused(make_run, now):
    run = make_run(S.RUNNING)
    before = row(run.pk)
    with pytest.raises(ValueError, match="holds no lease"):
        run.transition_to(S.CANCELED, lease_owner="sneaky")
    with pytest.raises(ValueError, match="suspension reason"):
        run.transition_to(S.COMPLETED, suspend_reason="no")
    with pytest.raises(TypeError, match="cannot set state, version"):
        run.transition_to(S.COMPLETED, state="ready", version=1)
    assert row(run.pk) == before
