"""Executor tokens: hashed at rest, shown once, revocable; from the command and the admin."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from runs.tokens import ExecutorToken


@pytest.mark.django_db
def test_a_token_is_stored_only_as_a_hash_of_its_secret():
    token, secret = ExecutorToken.issue("exec-9")
    stored = ExecutorToken.objects.values().get(pk=token.pk)
    assert secret not in str(stored)
    key_id, secret_part = secret[4:12], secret[13:]  # rbx_<8-char key id>_<secret>
    assert stored["key_id"] == key_id
    assert stored["secret_sha256"] == hashlib.sha256(secret_part.encode()).hexdigest()
    assert ExecutorToken.authenticate(secret) == token


@pytest.mark.django_db
@pytest.mark.parametrize("mangle", [
    lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # wrong secret
    lambda s: "xyz" + s[3:],  # wrong prefix
    lambda s: s[:12],  # truncated
    lambda s: "",
])
def test_a_wrong_or_malformed_token_authenticates_nobody(mangle):
    _, secret = ExecutorToken.issue("exec-9")
    assert ExecutorToken.authenticate(mangle(secret)) is None


@pytest.mark.django_db
def test_create_token_prints_the_secret_once_and_stores_its_hash():
    out, err = StringIO(), StringIO()
    call_command("create_token", "exec-42", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    token = ExecutorToken.objects.get(name="exec-42")
    assert ExecutorToken.authenticate(secret) == token
    assert "not shown again" in err.getvalue()
    assert secret not in err.getvalue()


@pytest.mark.django_db
def test_a_revoked_token_is_refused_with_401(client):
    token, secret = ExecutorToken.issue("exec-9")
    assert token.revoke() is True
    assert token.revoke() is False
    response = client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


@pytest.mark.django_db
def test_using_a_token_records_when_at_most_once_a_minute(client):
    token, secret = ExecutorToken.issue("exec-9")
    client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {secret}")
    first = ExecutorToken.objects.get(pk=token.pk).last_used_at
    assert first is not None and timezone.now() - first < timezone.timedelta(seconds=5)
    client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ExecutorToken.objects.get(pk=token.pk).last_used_at == first


@pytest.fixture
def admin_client_logged_in(client, db):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    return client


def test_the_admin_creates_a_token_and_shows_its_secret_once(admin_client_logged_in):
    response = admin_client_logged_in.post("/admin/runs/executortoken/add/",
                                           {"name": "exec-admin"}, follow=True)
    assert response.status_code == 200
    token = ExecutorToken.objects.get(name="exec-admin")
    shown = [str(m) for m in response.context["messages"]]
    (message,) = [m for m in shown if "not shown again" in m]
    secret = next(word for word in message.split() if word.startswith("rbx_"))
    assert ExecutorToken.authenticate(secret) == token
    assert token.created_by == "root"
    # The change page shows no secret and edits nothing.
    page = admin_client_logged_in.get(f"/admin/runs/executortoken/{token.pk}/change/")
    assert secret not in page.content.decode()


def test_the_admin_revokes_tokens_with_an_action(admin_client_logged_in):
    token, secret = ExecutorToken.issue("exec-9")
    response = admin_client_logged_in.post("/admin/runs/executortoken/", {
        "action": "revoke_tokens", "_selected_action": [token.pk]}, follow=True)
    assert response.status_code == 200
    assert ExecutorToken.objects.get(pk=token.pk).revoked_at is not None
    assert ExecutorToken.authenticate(secret).is_active is False
