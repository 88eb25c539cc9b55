"""The History page in headless Debian Chromium against a real daphne server: charts drawn
from real rollups, and the current bucket moving when a run is submitted meanwhile."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from runs import services
from tests.dashboard.conftest import PASSWORD
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.history.conftest import fold_everything

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_MS = 15_000


def finish(count: int, *, outcome: str) -> None:
    for _ in range(count):
        run = services.submit(name="build-report", queue="reports", max_attempts=1)
        services.lease(executor="exec-1", queues=["reports"])
        services.start(run.pk, executor="exec-1")
        if outcome == "completed":
            services.complete(run.pk, executor="exec-1", result={"ok": True})
        else:
            services.fail(run.pk, executor="exec-1", error="Timeout: upstream", retryable=False)


def log_in(page, url: str, path: str) -> None:
    page.goto(f"{url}{path}")
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path.split('?')[0]}*")


def test_the_history_page_draws_real_rollups_and_follows_live_changes(daphne_server,
                                                                      monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    User.objects.create_user("vera", password=PASSWORD)
    finish(3, outcome="completed")
    finish(2, outcome="failed")
    services.cancel(services.submit(name="send-digest", queue="emails").pk, actor="vera")
    services.submit(name="send-digest", queue="emails")
    fold_everything()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=WAIT_MS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, daphne_server.url, "/history/?range=1h")
        summary = page.locator("#history-summary")
        expect(summary).to_have_text(
            "Last hour: submitted 7 · completed 3 · failed 2 · canceled 1")
        for chart in ("throughput", "wait", "run", "dwell", "flow"):
            expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
        expect(page.locator("#chart-throughput .u-legend")).to_contain_text("Completed")
        expect(page.locator("#history-live")).to_have_text("Live: following changes")

        services.submit(name="send-digest", queue="emails")  # another process's write
        expect(summary).to_contain_text("submitted 8")

        page.goto(f"{daphne_server.url}/history/?range=24h&queue=reports")
        expect(summary).to_have_text(
            "Last 24 hours: submitted 5 · completed 3 · failed 2 · canceled 0")
        browser.close()


def test_the_scrubber_shows_a_past_minute_read_only_and_back_to_live_resumes(daphne_server,
                                                                             monkeypatch):
    from datetime import timedelta

    from django.utils import timezone
    from playwright.sync_api import expect, sync_playwright

    from runs.history.buckets import floor_to
    from tests.history.conftest import brute_counts_at

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    User.objects.create_user("vera", password=PASSWORD)
    start = timezone.now() - timedelta(minutes=40)
    for index in range(6):
        at = start + timedelta(minutes=index * 5)
        run = services.submit(name="build-report", queue="reports", now=at)
        if index % 2 == 0:
            run.transition_to("leased", actor="exec-1", now=at + timedelta(seconds=30),
                              lease_owner="exec-1",
                              lease_expires_at=at + timedelta(minutes=30))
    services.submit(name="send-digest", queue="emails")  # now: not in the past view
    fold_everything()
    moment = floor_to(start + timedelta(minutes=17), 60)
    expected = brute_counts_at(moment)
    assert expected["ready"] and expected["leased"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=WAIT_MS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, daphne_server.url, f"/?at={moment.isoformat().replace('+00:00', 'Z')}")
        for state, count in expected.items():
            expect(page.locator(f'.column[data-state="{state}"] [data-count]')).to_have_text(
                str(count))
        expect(page.locator('.column[data-state="leased"] .card').first).to_contain_text(
            "exec-1")
        expect(page.locator("#board form")).to_have_count(0)  # no actions in the past
        expect(page.locator("#connection .connection-label")).to_have_text(
            "Paused · viewing the past")
        expect(page.locator("#scrubber-moment")).to_contain_text(
            moment.strftime("%Y-%m-%d %H:%M"))

        page.get_by_role("button", name="+1 min").click()
        later = moment + timedelta(minutes=1)
        expect(page.locator("#scrubber-moment")).to_contain_text(later.strftime("%H:%M"))
        assert "at=" in page.url

        page.get_by_role("link", name="Back to live").click()
        expect(page.locator("#connection .connection-label")).to_have_text("Live")
        ready = page.locator('.column[data-state="ready"] [data-count]')
        before = int(ready.text_content())
        services.submit(name="send-digest", queue="emails")
        expect(ready).to_have_text(str(before + 1))
        browser.close()
