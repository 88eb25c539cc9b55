"""Redis hints: one PUBLISH after a commit, a burst of commits shares a few, and a hint
pending when the process exits is still published."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis
from django.conf import settings

from runs.changelog import hints

pytestmark = pytest.mark.redis


def messages(pubsub: redis.client.PubSub, *, quiet: float) -> int:
    """How many hints arrive until none has for `quiet` seconds."""
    count = 0
    while pubsub.get_message(ignore_subscribe_messages=True, timeout=quiet) is not None:
        count += 1
    return count


@pytest.fixture
def subscribed():
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(hints.channel())
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    yield pubsub
    pubsub.close()
    client.close()


def test_a_burst_of_commits_shares_a_few_publishes_and_a_later_one_still_gets_its_own(
        subscribed):
    for _ in range(200):
        hints.after_commit()
    burst = messages(subscribed, quiet=0.5)
    assert 1 <= burst < 20
    time.sleep(hints.PUBLISH_GAP * 2)  # the gap passes: the next commit is hinted at once
    hints.after_commit()
    assert messages(subscribed, quiet=0.5) == 1


def test_a_hint_pending_at_exit_is_published(subscribed):
    # A process that commits and exits at once. Its publishing thread is made to do nothing
    # here (it would race the exit): only the flush at exit can publish the hint.
    script = ("import django; django.setup(); from runs.changelog import hints; "
              "hints._Publisher._run = lambda self: None; hints.after_commit()")
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "REDIS_URL": settings.REDIS_URL,
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert messages(subscribed, quiet=0.5) >= 1
