"""Pruning the change log: rows past retention go in bounded batches, the audit trail stays,
and no row that a live hub has not read yet is ever removed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from runs import services
from runs.changelog.pruning import READER_STALE_AFTER, forget_reader, note_reader, prune
from runs.changelog.reader import Position, head
from runs.models import Change, ChangeReader, Transition

DAY = timedelta(days=1)


def last_position_of(run) -> Position:
    """Where the run's newest log row stands (read from the table: on a shared PostgreSQL,
    `head()` may trail while other sessions hold the watermark back)."""
    change = Change.objects.filter(run_id=run.pk).latest("id")
    if connection.vendor != "postgresql":
        return Position(0, change.id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid::text::bigint FROM runs_change WHERE id = %s", [change.id])
        return Position(cursor.fetchone()[0], change.id)


def submit_at(when, name: str = "old"):
    """A run whose creation and cancellation were written at `when`."""
    run = services.submit(name=name, now=when)
    run.transition_to("canceled", actor="x", now=when)
    return run


@pytest.mark.django_db
def test_rows_past_retention_go_in_batches_and_the_audit_trail_stays(now):
    old = [submit_at(now - 10 * DAY) for _ in range(3)]
    fresh = submit_at(now - DAY)
    assert prune(now=now, keep=7 * DAY, batch=2, max_batches=1) == 2  # one bounded batch
    assert prune(now=now, keep=7 * DAY, batch=2) == 4  # the rest, then it stops
    assert prune(now=now, keep=7 * DAY) == 0  # safe to repeat
    assert not Change.objects.filter(run_id__in=[r.pk for r in old]).exists()
    assert Change.objects.filter(run_id=fresh.pk).count() == 2
    assert Transition.objects.filter(run__in=old).count() == 6  # history is never pruned


@pytest.mark.django_db
def test_no_row_after_a_live_readers_position_is_removed(now):
    reader_at = last_position_of(submit_at(now - 10 * DAY, "read"))
    unread = submit_at(now - 9 * DAY, "unread")  # old, but the reader has not got to it
    note_reader("hub-a", reader_at)
    assert prune(now=now, keep=7 * DAY) == 2
    assert Change.objects.filter(run_id=unread.pk).count() == 2
    assert Change.objects.filter(at__lt=now - 7 * DAY).count() == 2


@pytest.mark.django_db
def test_a_reader_gone_quiet_no_longer_holds_pruning_back(now):
    reader_at = head()
    submit_at(now - 10 * DAY)
    note_reader("hub-gone", reader_at)
    ChangeReader.objects.filter(name="hub-gone").update(
        seen_at=now - READER_STALE_AFTER - timedelta(seconds=1))
    assert prune(now=now, keep=7 * DAY) == 2
    assert not ChangeReader.objects.filter(name="hub-gone").exists()
    forget_reader("hub-gone")  # idempotent


@pytest.mark.django_db
def test_the_command_prunes(now, capsys):
    submit_at(now - 10 * DAY)
    call_command("prune_changes", "--older-than", "7")
    assert "pruned 2 change-log row(s)" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)  # the clock's fold reads committed rows only
def test_the_clock_prunes_what_its_fold_has_read(now):
    submit_at(now - 10 * DAY)
    call_command("clock", "--once")
    assert not Change.objects.filter(at__lt=now - 7 * DAY).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_connected_hub_records_its_position_and_forgets_it_when_it_stops(
        socket_for, viewer):
    from dashboard.hub import get_hub

    await sync_to_async(services.submit)(name="x")
    socket = await socket_for(viewer)
    await socket.receive_json_from(timeout=5)
    hub = get_hub()
    await hub.read_round()
    reader = await sync_to_async(ChangeReader.objects.get)(name=hub.name)
    assert (reader.txid, reader.change_id) == (hub.position.txid, hub.position.id)
    assert reader.seen_at > timezone.now() - timedelta(minutes=1)
    await socket.disconnect()
    assert not await sync_to_async(ChangeReader.objects.filter(name=hub.name).exists)()
