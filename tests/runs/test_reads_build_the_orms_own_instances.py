"""runs.reads: a run read by its cached SQL is the instance the ORM would have built."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import router

from runs import reads
from runs.models import Run
from runs.queues import QueuePause
from runs.states import RunState

pytestmark = pytest.mark.django_db


def fields_of(run: Run) -> dict:
    return {field.attname: getattr(run, field.attname) for field in Run._meta.concrete_fields}


def test_a_run_read_by_id_has_every_field_the_orm_reads(make_run):
    parent = make_run(RunState.COMPLETED, result={"rows": [1, 2]})
    run = make_run(RunState.RUNNING, payload={"a": {"b": [1, None, "é"]}}, budget={"tokens": 5},
                   consumed={"tokens": 1.5}, progress=40, rerun_of=parent)
    read = reads.by_pk(Run, router.db_for_read(Run), run.pk)
    assert fields_of(read) == fields_of(Run.objects.get(pk=run.pk))
    assert read._state.adding is False and read._loaded_lifecycle["state"] == RunState.RUNNING


def test_an_unknown_id_reads_none_and_a_malformed_one_raises_like_the_orm():
    alias = router.db_for_read(Run)
    assert reads.by_pk(Run, alias, uuid.uuid4()) is None
    with pytest.raises(ValidationError):
        reads.by_pk(Run, alias, "not-a-uuid")


def test_lease_candidates_skip_paused_queues_and_other_states(make_run):
    ready = make_run(queue="mail")
    make_run(queue="paused")
    make_run(RunState.RUNNING, queue="mail")
    QueuePause.objects.create(queue="paused")
    found = reads.lease_candidates(Run, router.db_for_write(Run), state=RunState.READY,
                                   paused_model=QueuePause, queues=None, limit=10)
    assert [run.pk for run in found] == [ready.pk]

