"""Admin users: a superuser, and a staff member who may only view runs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client


@pytest.fixture
def admin_client_(db) -> Client:
    user = User.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(db) -> Client:
    user = User.objects.create_user("vera", password="pw-vera-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="runs", codename__in=["view_run", "view_transition"]))
    client = Client()
    client.force_login(user)
    return client
