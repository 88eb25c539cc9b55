"""Executor tokens: bearer credentials for the HTTP API, stored only as a hash.

A token reads `rbx_<key_id>_<secret>`. `key_id` is public and indexed, so a lookup never scans
and never compares secrets in SQL; the secret is checked against its SHA-256 digest with a
constant-time compare. SHA-256 (not a slow password hash) is right here because the secret is
256 random bits: there is nothing to brute-force, and every API call verifies one. The secret is
shown once, when the token is issued, and cannot be recovered afterwards.

A token acts as the executor named by it: the lease owner of whatever it leases is its `name`.

Every API call authenticates, and the token's row rarely changes: each process remembers the
rows it read for `TOKEN_CACHE_SECONDS` (a RUNBOARD setting, default 2; 0 reads every time)
and checks the secret against the remembered digest on every call. Revoking a token takes
effect at once in the process that revokes it (`revoke` forgets the row) and within that many
seconds in every other process — the bound on how long a revoked or deleted token still works.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from .conf import runboard_setting

TOKEN_PREFIX = "rbx"
KEY_ID_BYTES = 6  # enough to be unique; never secret
KEY_ID_CHARS = 8  # len(token_urlsafe(6))
SECRET_BYTES = 32  # 256 bits
# `last_used_at` is a hint for operators, not an audit log: write it at most once a minute per
# token so a busy executor does not turn every API call into an UPDATE.
LAST_USED_RESOLUTION = timedelta(seconds=60)
DEFAULT_TOKEN_CACHE_SECONDS = 2.0

# key_id -> (monotonic time read, the row as read); only rows that exist, so at most one entry
# per token. Dict reads and writes are atomic: threads share it without a lock.
_recently_read: dict[str, tuple[float, ExecutorToken]] = {}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ExecutorTokenQuerySet(models.QuerySet):
    """Read vocabulary for tokens."""

    def active(self) -> ExecutorTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ExecutorToken(models.Model):
    """One bearer credential of one executor; revocable, never stored in clear."""

    name = models.CharField(
        max_length=200,
        help_text="The executor this token acts as (the lease owner of the runs it takes).",
    )
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    secret_sha256 = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.CharField(max_length=200, blank=True, default="", editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ExecutorTokenQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "executor token"

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        """What identifies the token in lists and logs without revealing it."""
        return f"{TOKEN_PREFIX}_{self.key_id}_…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, name: str, *, created_by: str = "") -> tuple[ExecutorToken, str]:
        """Create a token for executor `name`; return it and the full secret (shown once)."""
        token = cls(name=name, created_by=created_by)
        secret = token.generate_secret()
        token.save()
        return token, secret

    def generate_secret(self) -> str:
        """Give this unsaved token a key id and a fresh secret; return the full token string."""
        self.name = (self.name or "").strip()
        if not self.name:
            raise ValueError("a token needs the name of the executor it acts as")
        key_id = secrets.token_urlsafe(KEY_ID_BYTES)
        while ExecutorToken.objects.filter(key_id=key_id).exists():  # 48 bits: never, really
            key_id = secrets.token_urlsafe(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        self.key_id, self.secret_sha256 = key_id, _digest(secret)
        return f"{TOKEN_PREFIX}_{key_id}_{secret}"

    @classmethod
    def authenticate(cls, raw: str, *, now: float | None = None) -> ExecutorToken | None:
        """The token `raw` names if it exists and its secret matches (revoked ones included:
        the caller tells a revoked token from an unknown one). `now`: `time.monotonic()`."""
        # key_id is url-safe base64 and may itself contain "_", so cut it by length.
        head = f"{TOKEN_PREFIX}_"
        if not raw.startswith(head) or raw[len(head) + KEY_ID_CHARS:][:1] != "_":
            return None
        key_id = raw[len(head):len(head) + KEY_ID_CHARS]
        secret = raw[len(head) + KEY_ID_CHARS + 1:]
        if not secret:
            return None
        token = cls._read(key_id, now=time.monotonic() if now is None else now)
        if token is None or not hmac.compare_digest(token.secret_sha256, _digest(secret)):
            return None
        return token

    @classmethod
    def _read(cls, key_id: str, *, now: float) -> ExecutorToken | None:
        """The row of `key_id`, as read at most `TOKEN_CACHE_SECONDS` ago in this process."""
        max_age = float(runboard_setting("TOKEN_CACHE_SECONDS", DEFAULT_TOKEN_CACHE_SECONDS))
        remembered = _recently_read.get(key_id)
        if remembered is not None and now - remembered[0] < max_age:
            return remembered[1]
        try:
            token = cls.objects.get(key_id=key_id)
        except cls.DoesNotExist:
            _recently_read.pop(key_id, None)
            return None
        if max_age > 0:
            _recently_read[key_id] = (now, token)
        return token

    def touch(self, *, now: datetime | None = None) -> None:
        """Record use, at most once per `LAST_USED_RESOLUTION`."""
        now = now or timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        ExecutorToken.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now

    def revoke(self, *, now: datetime | None = None) -> bool:
        """Revoke the token; False if it already was."""
        now = now or timezone.now()
        updated = ExecutorToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if updated:
            self.revoked_at = now
        _recently_read.pop(self.key_id, None)  # this process refuses it from the next call
        return bool(updated)
