"""The board websocket through the real ASGI stack (origin check, session auth, routing)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction

from dashboard.consumers import CLOSE_LOGIN_REQUIRED
from dashboard.hub import Hub, get_hub
from runs import services
from runs.changelog.reader import Position
from runs.models import Run
from runs.states import RunState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TIMEOUT = 5


async def receive(socket, kind: str) -> dict:
    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert frame["type"] == kind, frame
    return frame


def column(snapshot: dict, state: str) -> dict:
    return next(c for c in snapshot["columns"] if c["state"] == state)


async def test_anonymous_socket_is_closed_with_login_required(socket_for):
    socket = await socket_for(None)
    assert (await socket.receive_output(timeout=TIMEOUT)) == {
        "type": "websocket.close", "code": CLOSE_LOGIN_REQUIRED}


async def test_foreign_origin_is_refused(socket_for, viewer):
    socket = await socket_for(viewer, origin=b"http://evil.example")
    assert socket.connected is False


async def test_snapshot_on_connect_has_columns_counts_cards_and_actions(
        socket_for, operator, make_run):
    run = await sync_to_async(make_run)(RunState.RUNNING, name="etl")
    await sync_to_async(make_run)(RunState.READY)
    socket = await socket_for(operator)
    snapshot = await receive(socket, "snapshot")
    assert [c["state"] for c in snapshot["columns"]] == [s.value for s in RunState]
    running = column(snapshot, "running")
    assert running["count"] == 1 and running["cards"][0]["id"] == str(run.pk)
    assert running["phase"] == "In flight" and running["label"] == "Running"
    assert running["actions"] == ["cancel", "suspend"]
    assert column(snapshot, "ready")["count"] == 1
    assert sorted(snapshot["permitted_actions"]) == sorted(snapshot["actions"])
    await socket.disconnect()


async def test_a_committed_transition_arrives_as_a_delta_with_counts(
        socket_for, viewer, make_run):
    run = await sync_to_async(make_run)(RunState.RUNNING)
    socket = await socket_for(viewer)
    await receive(socket, "snapshot")
    await sync_to_async(services.cancel)(run.pk, actor="alice", reason="dup")
    frame = await receive(socket, "deltas")
    (event,) = frame["deltas"]
    assert (event["id"], event["from"], event["to"]) == (str(run.pk), "running", "canceled")
    assert event["version"] == 2 and event["run"]["state"] == "canceled"
    assert frame["counts"]["running"] == 0 and frame["counts"]["canceled"] == 1
    await socket.disconnect()


async def test_a_rolled_back_transition_sends_nothing(socket_for, viewer, make_run):
    doomed = await sync_to_async(make_run)(RunState.RUNNING)
    other = await sync_to_async(make_run)(RunState.READY)
    socket = await socket_for(viewer)
    await receive(socket, "snapshot")

    def cancel_then_roll_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            Run.objects.get(pk=doomed.pk).transition_to(RunState.CANCELED, actor="x")
            raise RuntimeError("roll back")

    await sync_to_async(cancel_then_roll_back)()
    await sync_to_async(services.cancel)(other.pk, actor="x")
    frames = [await receive(socket, "deltas")]
    while not any(e["id"] == str(other.pk) for e in frames[-1]["deltas"]):
        frames.append(await receive(socket, "deltas"))
    # The rolled-back move never shows. (On PostgreSQL a frame may repeat the runs' creation:
    # a transaction open elsewhere in the cluster when the hub started held the log's head
    # back, and versions make the repeat harmless.)
    assert not any(e["id"] == str(doomed.pk) and e["to"] == "canceled"
                   for frame in frames for e in frame["deltas"])
    assert frames[-1]["counts"]["running"] == 1 and frames[-1]["counts"]["canceled"] == 1
    await socket.disconnect()


async def test_the_filter_is_honoured_in_snapshot_deltas_and_counts(socket_for, viewer, make_run):
    billing = await sync_to_async(make_run)(RunState.RUNNING, queue="billing", name="invoice")
    other = await sync_to_async(make_run)(RunState.RUNNING, queue="default", name="invoice")
    socket = await socket_for(viewer, "?queue=billing&name=VOIC")
    snapshot = await receive(socket, "snapshot")
    assert snapshot["filter"] == {"queue": "billing", "name": "VOIC"}
    assert [c["id"] for c in column(snapshot, "running")["cards"]] == [str(billing.pk)]
    assert column(snapshot, "running")["count"] == 1
    await sync_to_async(services.cancel)(other.pk, actor="x")
    await sync_to_async(services.cancel)(billing.pk, actor="x")
    frame = await receive(socket, "deltas")
    assert [e["id"] for e in frame["deltas"]] == [str(billing.pk)]
    assert frame["counts"]["canceled"] == 1 and frame["counts"]["running"] == 0
    await socket.disconnect()


async def test_a_reconnect_with_its_position_gets_exactly_the_missed_changes(
        socket_for, viewer, make_run):
    stays = await sync_to_async(make_run)(RunState.READY)
    moves = await sync_to_async(make_run)(RunState.READY)
    leaves = await sync_to_async(make_run)(RunState.RUNNING)
    socket = await socket_for(viewer)
    position = (await receive(socket, "snapshot"))["position"]
    await socket.disconnect()

    await sync_to_async(services.cancel)(moves.pk, actor="x")
    await sync_to_async(services.cancel)(leaves.pk, actor="x")
    again = await socket_for(viewer, f"?after={position}")
    frame = await receive(again, "deltas")  # not a snapshot
    assert frame["resumed"] is True and frame["permitted_actions"] == []
    assert Position.parse(frame["position"]) >= Position.parse(position)
    seen = {e["id"]: e["to"] for e in frame["deltas"]}
    # On PostgreSQL a transaction open elsewhere on the server can hold the log's watermark
    # back when the new hub starts: what the catch-up could not yet read follows as deltas.
    while seen.get(str(moves.pk)) != "canceled" or seen.get(str(leaves.pk)) != "canceled":
        frame = await receive(again, "deltas")
        seen.update({e["id"]: e["to"] for e in frame["deltas"]})
    assert str(stays.pk) not in seen  # only what it missed
    counts = frame["counts"]
    assert (counts["ready"], counts["running"], counts["canceled"]) == (1, 0, 2)
    await again.disconnect()


async def test_a_position_the_log_no_longer_holds_gets_a_snapshot(socket_for, viewer, make_run):
    await sync_to_async(make_run)(RunState.READY)
    for forged in ("0.0", "7.999999", "garbage"):
        socket = await socket_for(viewer, f"?after={forged}")
        snapshot = await receive(socket, "snapshot")
        assert column(snapshot, "ready")["count"] == 1
        await socket.disconnect()


async def test_malformed_and_unknown_messages_get_error_frames_and_the_socket_lives(
        socket_for, viewer):
    socket = await socket_for(viewer)
    await receive(socket, "snapshot")
    for text, code in (("{", "invalid_json"), ("[1, 2]", "invalid_message"),
                       ('{"type": 3}', "invalid_message"),
                       ('{"type": "drop_tables"}', "unknown_type"),
                       ("x" * 10_000, "invalid_message")):
        await socket.send_to(text_data=text)
        error = await receive(socket, "error")
        assert error["code"] == code
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await receive(socket, "error"))["code"] == "invalid_message"
    await socket.send_json_to({"type": "resync"})
    await receive(socket, "snapshot")
    await socket.send_json_to({"type": "ping"})
    await receive(socket, "pong")
    await socket.disconnect()


async def test_resync_after_logout_closes_the_socket(socket_for, viewer):
    socket = await socket_for(viewer)
    await receive(socket, "snapshot")
    from django.contrib.sessions.models import Session
    await sync_to_async(Session.objects.all().delete)()
    await socket.send_json_to({"type": "resync"})
    assert (await socket.receive_output(timeout=TIMEOUT))["code"] == CLOSE_LOGIN_REQUIRED


async def test_resync_reflects_permissions_lost_meanwhile(socket_for, operator):
    socket = await socket_for(operator)
    assert (await receive(socket, "snapshot"))["permitted_actions"]

    def demote() -> None:
        User.objects.get(pk=operator.pk).groups.clear()

    await sync_to_async(demote)()
    await socket.send_json_to({"type": "resync"})
    assert (await receive(socket, "snapshot"))["permitted_actions"] == []
    await socket.disconnect()


async def test_a_run_socket_gets_its_run_and_transitions_and_only_its_deltas(
        socket_for, viewer, make_run):
    mine = await sync_to_async(services.submit)(name="etl")
    other = await sync_to_async(make_run)(RunState.READY)
    socket = await socket_for(viewer, f"?run={mine.pk}")
    snapshot = await receive(socket, "snapshot")
    assert snapshot["view"] == "run" and snapshot["run"]["id"] == str(mine.pk)
    assert [(t["from"], t["to"]) for t in snapshot["transitions"]] == [(None, "ready")]
    await sync_to_async(services.cancel)(other.pk, actor="x")
    await sync_to_async(services.cancel)(mine.pk, actor="x")
    frame = await receive(socket, "deltas")
    assert [e["id"] for e in frame["deltas"]] == [str(mine.pk)]
    await socket.disconnect()


async def test_a_bad_run_id_or_unknown_run_closes_the_socket(socket_for, viewer):
    socket = await socket_for(viewer, "?run=not-a-uuid")
    assert (await socket.receive_output(timeout=TIMEOUT))["code"] == 4400
    socket = await socket_for(viewer, "?run=00000000-0000-7000-8000-000000000000")
    assert (await socket.receive_output(timeout=TIMEOUT))["code"] == 4404


async def test_a_refusal_closes_at_once_while_the_hub_is_still_stopping(
        socket_for, viewer, monkeypatch):
    stopping, release = asyncio.Event(), asyncio.Event()
    stop_if_idle = Hub.stop_if_idle

    async def held_stop_if_idle(self: Hub) -> None:
        stopping.set()
        await release.wait()
        await stop_if_idle(self)

    # The hub's shutdown (cancelling its tasks, a database write) is held at its door: the
    # close must not wait for it.
    monkeypatch.setattr(Hub, "stop_if_idle", held_stop_if_idle)
    socket = await socket_for(viewer, "?run=00000000-0000-7000-8000-000000000000")
    try:
        assert (await socket.receive_output(timeout=TIMEOUT))["code"] == 4404
        await asyncio.wait_for(stopping.wait(), TIMEOUT)  # and the hub does go on to stop
    finally:
        release.set()
    await asyncio.wait_for(get_hub().stop_if_idle(), TIMEOUT)
    assert not get_hub().active


async def test_fifty_watchers_cost_one_log_read_per_change(socket_for, viewer, make_run):
    run = await sync_to_async(make_run)(RunState.RUNNING)
    sockets = [await socket_for(viewer) for _ in range(50)]
    for socket in sockets:
        await receive(socket, "snapshot")
    hub = get_hub()
    before = dict(hub.stats)
    await sync_to_async(services.cancel)(run.pk, actor="x")
    for socket in sockets:
        frame = await receive(socket, "deltas")
        assert frame["deltas"][0]["id"] == str(run.pk)
    assert hub.stats["rows"] - before["rows"] == 1  # read once for the whole process
    assert hub.stats["frames"] - before["frames"] == 50
    for socket in sockets:
        await socket.disconnect()
    assert not hub.active  # the last watcher gone, the hub stops reading


@pytest.mark.redis
async def test_an_idle_socket_on_redis_still_gets_the_next_delta(socket_for, viewer, make_run):
    run = await sync_to_async(make_run)(RunState.RUNNING)
    socket = await socket_for(viewer)
    await receive(socket, "snapshot")
    # Longer than redis-py 8's default 5 s socket_timeout, twice over: the socket must not be
    # closed meanwhile, and the hint subscription must still be alive. (A delta repeating the
    # run's creation may come, if something held the log's watermark back at the start.)
    frames = await idle_frames(socket, seconds=11)
    assert all(frame["type"] == "deltas" for frame in frames), frames
    hub = get_hub()
    hints_before = hub.stats["hints"]
    await sync_to_async(services.cancel)(run.pk, actor="x")
    frame = await receive(socket, "deltas")
    assert frame["deltas"][0]["to"] == "canceled"
    assert hub.redis_connected is True and hub.stats["hints"] > hints_before
    await socket.disconnect()


async def test_a_page_load_reuses_the_counts_the_hub_keeps_instead_of_counting(
        socket_for, viewer, make_run):
    from dashboard.hub import shared_counts
    from runs.selectors import BoardFilter

    await sync_to_async(make_run)(RunState.RUNNING)
    assert shared_counts(BoardFilter()) is None
    socket = await socket_for(viewer)
    await receive(socket, "snapshot")
    assert shared_counts(BoardFilter())["running"] == 1
    queries, running_count = await sync_to_async(_read_board_queries)(viewer)
    # One card query per state and no count query: the hub's exact counts are reused.
    assert (queries, running_count) == (len(RunState), 1)
    await socket.disconnect()


def _read_board_queries(viewer: User) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from dashboard.board import read_board
    from runs.selectors import BoardFilter

    viewer.get_all_permissions()  # permissions are cached per user object; not what we count
    with CaptureQueriesContext(connection) as captured:
        snapshot = read_board(BoardFilter(), user=viewer)
    return len(captured), column(snapshot, "running")["count"]


async def test_finished_cards_in_a_snapshot_say_who_ended_the_run_and_why(
        socket_for, viewer, make_run):
    run = await sync_to_async(make_run)(RunState.RUNNING)
    await sync_to_async(services.cancel)(run.pk, actor="olga", reason="duplicate of #12")
    socket = await socket_for(viewer)
    (card,) = column(await receive(socket, "snapshot"), "canceled")["cards"]
    assert (card["moved_by"], card["moved_because"]) == ("olga", "duplicate of #12")
    await socket.disconnect()


async def idle_frames(socket, *, seconds: float) -> list[dict]:
    """Every frame that arrives during `seconds` (fails on a close)."""
    import time

    frames, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await socket.receive_nothing(timeout=min(left, 1.0), interval=0.1):
            continue
        output = await socket.receive_output(timeout=1)
        assert output["type"] == "websocket.send", output  # never a close
        frames.append(json.loads(output["text"]))
    return frames
