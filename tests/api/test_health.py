"""GET /healthz: 200 when the database and the channel layer answer, 503 when one does not."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import override_settings

import runs.health

pytestmark = pytest.mark.django_db


def test_healthz_is_200_when_database_and_channel_layer_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok",
                                                          "channel_layer": "ok"}}


def test_healthz_needs_no_login_and_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


@override_settings(CHANNEL_LAYERS={"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_timeout": 1}]},
}})
def test_healthz_is_503_when_the_channel_layer_is_unreachable(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("failed")


def test_healthz_is_503_when_the_database_fails(client, monkeypatch):
    def broken() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(runs.health, "_check_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed: OperationalError"
