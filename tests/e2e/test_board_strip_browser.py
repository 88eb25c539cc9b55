"""The board's throughput strip in headless Debian Chromium against a real daphne server:
drawn from real rollups, moved by the board's stream, fitting every size; and axe on the
History page and on the board at a past moment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from runs import services
from tests.dashboard.conftest import PASSWORD
from tests.e2e.browser import assert_fits, serious_violations, size
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_history_browser import finish, log_in
from tests.history.conftest import fold_everything

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_MS = 15_000


def test_the_strip_draws_finished_runs_per_minute_and_follows_the_stream(daphne_server,
                                                                         monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    User.objects.create_user("vera", password=PASSWORD)
    finish(3, outcome="completed")
    finish(2, outcome="failed")
    fold_everything()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=WAIT_MS)
        page = browser.new_page(viewport=size("laptop"))
        log_in(page, daphne_server.url, "/")
        strip = page.locator("#throughput-strip")
        summary = page.locator("#strip-summary")
        expect(summary).to_have_text("Last hour: 3 completed · 2 failed")
        expect(strip.locator("canvas")).to_have_count(1)
        expect(strip.get_by_role("link", name="Finished per minute")).to_have_attribute(
            "href", "/history/?range=1h")
        expect(page.locator("#connection .connection-label")).to_have_text("Live")

        finish(1, outcome="completed")  # another process's write, not folded yet
        expect(summary).to_have_text("Last hour: 4 completed · 2 failed")

        for name in ("laptop", "desktop", "phone"):
            page.set_viewport_size(size(name))
            expect(strip.locator("canvas")).to_have_count(1)
            assert_fits(page)
        browser.close()


def test_the_history_page_and_the_board_in_the_past_have_nothing_serious_for_axe(
        daphne_server, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    from runs.history.buckets import floor_to

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    User.objects.create_user("vera", password=PASSWORD)
    start = timezone.now() - timedelta(minutes=30)
    for index in range(4):
        run = services.submit(name="import-feed", queue="imports",
                              now=start + timedelta(minutes=index * 5))
        if index % 2:
            services.cancel(run.pk, actor="vera", reason="not needed")
    finish(2, outcome="completed")
    finish(1, outcome="failed")
    fold_everything()
    moment = floor_to(start + timedelta(minutes=12), 60)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=WAIT_MS)
        page = browser.new_page(viewport=size("laptop"))
        log_in(page, daphne_server.url, "/history/?range=24h")
        expect(page.locator("#chart-flow canvas")).to_have_count(1)
        assert serious_violations(page) == []

        page.goto(f"{daphne_server.url}/?at={moment.isoformat().replace('+00:00', 'Z')}")
        expect(page.locator("#connection .connection-label")).to_have_text(
            "Paused · viewing the past")
        expect(page.locator("#throughput-strip canvas")).to_have_count(1)
        assert serious_violations(page) == []
        browser.close()
