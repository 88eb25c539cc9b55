"""Each process remembers the token rows it read for TOKEN_CACHE_SECONDS: revoking takes
effect at once where it happens, and within that bound in every other process."""

from __future__ import annotations

import pytest
from django.utils import timezone

from runs.tokens import ExecutorToken

pytestmark = pytest.mark.django_db


def revoke_elsewhere(token: ExecutorToken) -> None:
    """What another process's revoke looks like from here: the row changes, this cache does
    not hear of it."""
    ExecutorToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())


def test_a_token_revoked_in_this_process_is_refused_on_its_next_call(client):
    token, secret = ExecutorToken.issue("exec-9")
    assert client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert ExecutorToken.objects.get(pk=token.pk).revoke() is True  # another instance, as the admin
    response = client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


def test_a_token_revoked_elsewhere_works_here_until_the_cache_expires(settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "TOKEN_CACHE_SECONDS": 2}
    token, secret = ExecutorToken.issue("exec-9")
    assert ExecutorToken.authenticate(secret, now=100.0).is_active
    revoke_elsewhere(token)
    assert ExecutorToken.authenticate(secret, now=101.9).is_active
    assert ExecutorToken.authenticate(secret, now=102.0).is_active is False


def test_a_token_deleted_elsewhere_authenticates_nobody_once_the_cache_expires(settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "TOKEN_CACHE_SECONDS": 2}
    token, secret = ExecutorToken.issue("exec-9")
    assert ExecutorToken.authenticate(secret, now=100.0) == token
    ExecutorToken.objects.filter(pk=token.pk).delete()
    assert ExecutorToken.authenticate(secret, now=102.5) is None


def test_with_no_cache_a_revocation_elsewhere_is_refused_at_once(settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "TOKEN_CACHE_SECONDS": 0}
    token, secret = ExecutorToken.issue("exec-9")
    assert ExecutorToken.authenticate(secret, now=100.0).is_active
    revoke_elsewhere(token)
    assert ExecutorToken.authenticate(secret, now=100.0).is_active is False


def test_the_secret_is_checked_on_every_call_even_when_the_row_is_remembered():
    _, secret = ExecutorToken.issue("exec-9")
    assert ExecutorToken.authenticate(secret, now=100.0) is not None
    assert ExecutorToken.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"),
                                      now=100.5) is None
