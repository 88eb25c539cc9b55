"""`services.submit`: ready now or scheduled for later, with its audit row; bad input refused."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.exceptions import InvalidInput
from runs.models import Change, Run, Transition
from runs.states import RunState
from tests.runs.conftest import audit


@pytest.mark.django_db
def test_a_run_due_now_is_ready_with_every_option_kept():
    run = services.submit(name="etl", queue="nightly", payload={"day": 3}, priority=5,
                          max_attempts=4, budget={"tokens": 1000}, backoff_base=1,
                          backoff_factor=3, backoff_cap=20, backoff_jitter=0, actor="api")
    stored = Run.objects.get(pk=run.pk)
    assert stored.state == RunState.READY and stored.version == 1
    assert (stored.queue, stored.payload, stored.priority, stored.max_attempts) == (
        "nightly", {"day": 3}, 5, 4)
    assert stored.budget == {"tokens": 1000} and stored.consumed == {}
    assert (stored.backoff_base_seconds, stored.backoff_factor, stored.backoff_cap_seconds,
            stored.backoff_jitter) == (1, 3, 20, 0)
    assert audit(run.pk) == [("", "ready")]
    assert stored.transitions.get().actor == "api"


@pytest.mark.django_db
def test_a_run_due_later_is_scheduled_and_one_due_in_the_past_is_ready():
    later = timezone.now() + timedelta(hours=1)
    assert services.submit(name="etl", scheduled_at=later).state == RunState.SCHEDULED
    earlier = timezone.now() - timedelta(hours=1)
    run = services.submit(name="etl", scheduled_at=earlier)
    assert run.state == RunState.READY and run.scheduled_at == earlier


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments",
    [
        {"name": ""}, {"name": "x" * 201}, {"name": 7}, {"name": "a", "queue": ""},
        {"name": "a", "priority": "high"}, {"name": "a", "max_attempts": 0},
        {"name": "a", "budget": {"tokens": -1}}, {"name": "a", "budget": {"tokens": "lots"}},
        {"name": "a", "budget": ["tokens"]}, {"name": "a", "backoff_jitter": 2},
        {"name": "a", "backoff_base": -1}, {"name": "a", "colour": "red"},
        {"name": "a", "payload": {"when": object()}},
        {"name": "a", "scheduled_at": datetime(2030, 1, 1)},
    ],
    ids=lambda arguments: ",".join(arguments),
)
def test_invalid_submissions_are_refused_and_create_nothing(arguments):
    with pytest.raises(InvalidInput) as refused:
        services.submit(**arguments)
    assert refused.value.code == "invalid"
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_the_run_its_audit_row_and_its_change_row_are_what_the_instance_says():
    run = services.submit(name="report", queue="mail", payload={"x": 1}, rerun_of=None,
                          actor="ann")
    stored = Run.objects.get(pk=run.pk)
    fields = [field.attname for field in Run._meta.concrete_fields]
    assert [getattr(stored, name) for name in fields] == [getattr(run, name) for name in fields]
    assert list(Transition.objects.filter(run=run).values_list(
        "from_state", "to_state", "actor", "reason", "attempt", "at")) == [
        ("", RunState.READY, "ann", "submitted", 0, run.created_at)]
    assert list(Change.objects.filter(run_id=run.pk).values_list(
        "kind", "version", "to_state", "queue", "name", "actor")) == [
        (Change.CREATED, 1, RunState.READY, "mail", "report", "ann")]
