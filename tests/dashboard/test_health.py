"""GET /healthz: 200 when the database answers (503 when it does not), with the hub's log lag
and, with Redis, whether hints arrive — which only affect latency, never health."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.test import AsyncClient

import dashboard.health
from runs.models import Change
from runs.states import RunState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_healthz_is_200_with_an_idle_hub_when_no_board_is_open():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["checks"]["database"] == "ok"
    assert (body["hub"], body["log_lag_seconds"]) == ("idle", None)


async def test_healthz_needs_no_login_and_refuses_writes():
    assert (await AsyncClient().post("/healthz")).status_code == 405


async def test_healthz_reports_the_hub_caught_up_while_a_board_is_open(
        socket_for, viewer, make_run):
    socket = await socket_for(viewer)
    await socket.receive_json_from(timeout=5)
    await sync_to_async(make_run)(RunState.READY)
    body = (await AsyncClient().get("/healthz")).json()
    assert body["hub"] == "reading" and body["log_lag_seconds"] >= 0
    await socket.disconnect()


async def test_the_lag_is_how_far_the_hub_reading_is_behind_the_newest_change(
        socket_for, viewer, make_run):
    from datetime import timedelta

    from dashboard.hub import get_hub

    socket = await socket_for(viewer)
    await socket.receive_json_from(timeout=5)
    hub = get_hub()
    run = await sync_to_async(make_run)(RunState.READY)
    newest = await sync_to_async(Change.objects.filter(run_id=run.pk).get)()
    async with hub._round_lock:  # no read round may finish meanwhile
        # As if the hub had last read a row written 30 s before the newest, and not caught up
        # since.
        hub.last_row_at = newest.at - timedelta(seconds=30)
        hub.caught_up_at = newest.at - timedelta(seconds=30)
        assert 29 < await hub.lag_seconds() < 31
    await socket.disconnect()


async def test_healthz_is_503_when_the_database_fails(monkeypatch):
    def broken() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(dashboard.health, "_check_database", broken)
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed: OperationalError"
