"""Users for the operator UI: an operator with every run permission, a watcher with none."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from runs.actions import ACTIONS


def grant(user: User, *action_names: str) -> User:
    codenames = [ACTIONS[name].permission.split(".")[1] for name in action_names]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="runs",
                                                         codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("olga", password="pw-olga-123")
    return grant(user, *ACTIONS)


@pytest.fixture
def watcher(db) -> User:
    return User.objects.create_user("wendy", password="pw-wendy-123")


@pytest.fixture
def operator_client(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def watcher_client(watcher: User) -> Client:
    client = Client()
    client.force_login(watcher)
    return client
