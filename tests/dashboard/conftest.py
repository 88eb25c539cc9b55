"""Board fixtures: users with and without operator rights, logged-in sockets, transitions."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

OPERATORS = "Run operators"
PASSWORD = "correct horse battery staple"


def ensure_operators_group() -> Group:
    """The group the data migration creates (a transactional test's flush removes it)."""
    migration = importlib.import_module("runs.migrations.0002_board_operators_group")
    migration.create_group(apps, SimpleNamespace(connection=connection))
    return Group.objects.get(name=OPERATORS)


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("olga", password=PASSWORD)
    user.groups.add(ensure_operators_group())
    return user


@pytest.fixture
def viewer(db) -> User:
    return User.objects.create_user("victor", password=PASSWORD)


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest_asyncio.fixture
async def socket_for() -> Callable[..., Any]:
    """`await socket_for(user, "?queue=x")` → a connected communicator (snapshot unread)."""
    from dashboard.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(user: User | None, query: str = "", *,
                          origin: bytes = b"http://localhost") -> WebsocketCommunicator:
        headers = [(b"origin", origin), (b"host", b"localhost")]
        if user is not None:
            cookie = await sync_to_async(session_cookie)(user)
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        communicator = WebsocketCommunicator(application, f"/ws/board/{query}", headers=headers)
        communicator.connected, communicator.close_code = await communicator.connect(timeout=5)
        opened.append(communicator)
        return communicator

    yield open_socket
    for communicator in opened:  # as a browser would: tell the server the socket is gone
        # Already closed by the server, or cancelled by a test's timed-out receive (which
        # re-raises CancelledError here: a BaseException that escaped would skip the
        # database flush of a transactional test, and every later test would fail with it).
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await communicator.disconnect(timeout=2)
