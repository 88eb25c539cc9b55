"""Users for the Queues and Executors pages: an operator in the "Run operators" group (which
migration 0005 gives `runs.pause_queue`), and a watcher with no permission."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.dashboard.conftest import PASSWORD, ensure_operators_group
from tests.runpage.conftest import watcher, watcher_client  # noqa: F401 - no permission at all

OPERATORS = "Run operators"


def ensure_queue_operators() -> Group:
    """The operators group with every run action and the queue pause (a transactional test's
    flush removes what the migrations created)."""
    group = ensure_operators_group()
    migration = importlib.import_module("runs.migrations.0006_queues_executors")
    migration.grant_pause_permission(apps, SimpleNamespace(connection=connection))
    return group


@pytest.fixture
def queue_operator(db) -> User:
    user = User.objects.create_user("quinn", password=PASSWORD)
    user.groups.add(ensure_queue_operators())
    return user


@pytest.fixture
def operator_client(queue_operator: User) -> Client:
    client = Client()
    client.force_login(queue_operator)
    return client


def queries_for(client: Client, url: str) -> int:
    """How many queries one GET of `url` makes (it must answer 200)."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)
