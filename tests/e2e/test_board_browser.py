"""The board in headless Debian Chromium against a real daphne server."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from runs import services
from runs.states import RunState
from tests.dashboard.conftest import PASSWORD
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 15_000


def board_data(make_run) -> dict:
    """A board that looks like a real fleet: every kind of card detail at least once."""
    now = timezone.now()
    runs = {
        "etl": make_run(RunState.RUNNING, name="nightly-etl", queue="analytics", progress=62,
                        state_changed_at=now - timedelta(minutes=2),
                        heartbeat_at=now - timedelta(seconds=3), max_attempts=5,
                        budget={"tokens": 50_000, "cost_cents": 400},
                        consumed={"tokens": 41_200, "cost_cents": 130}),
        "invoices": make_run(RunState.READY, name="send-invoices", queue="billing"),
        "report": make_run(RunState.RUNNING, name="render-report", queue="default",
                           progress=18, heartbeat_at=now - timedelta(seconds=11),
                           state_changed_at=now - timedelta(minutes=1),
                           lease_expires_at=now + timedelta(seconds=4)),
    }
    make_run(RunState.SCHEDULED, name="weekly-digest", queue="mail",
             scheduled_at=now + timedelta(hours=3))
    make_run(RunState.READY, name="resize-images", queue="media", priority=5)
    make_run(RunState.LEASED, name="sync-crm", queue="default")
    make_run(RunState.RETRY_WAIT, name="fetch-rates", queue="billing", attempts=2,
             next_attempt_at=now + timedelta(seconds=95),
             last_error="ConnectionError: upstream rates API timed out after 30s\nTraceback…")
    make_run(RunState.SUSPENDED, name="train-model", queue="ml", budget={"gpu_minutes": 120},
             consumed={"gpu_minutes": 120}, suspend_reason="budget exhausted: gpu_minutes "
             "120/120", suspended_by="budget")
    make_run(RunState.COMPLETED, name="backup-db", queue="ops", attempts=1)
    make_run(RunState.COMPLETED, name="send-invoices", queue="billing", attempts=1)
    make_run(RunState.FAILED, name="import-orders", queue="default", attempts=3,
             last_error="KeyError: 'customer_id'\n  File \"orders.py\", line 12")
    make_run(RunState.CANCELED, name="reindex-search", queue="search")
    return runs


def logged_in_http(base_url: str, username: str) -> httpx.Client:
    """A second client, outside the page, with its own session."""
    http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)
    http.get("/login/")
    token = http.cookies["csrftoken"]
    response = http.post("/login/", data={"username": username, "password": PASSWORD,
                                          "csrfmiddlewaretoken": token},
                         headers={"Referer": f"{base_url}/login/"})
    assert response.status_code == 302, response.text
    return http


def test_the_board_is_live_in_a_real_browser(daphne_server, operator, make_run, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    runs = board_data(make_run)
    etl, invoices = runs["etl"], runs["invoices"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 2150, "height": 900})
        expect.set_options(timeout=WAIT_MS)
        page.goto(f"{daphne_server.url}/")
        assert "/login/" in page.url
        page.fill("input[name=username]", "olga")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        connection = page.locator("#connection")
        expect(connection).to_have_attribute("data-status", "live")

        def column(state: str):
            return page.locator(f'.column[data-state="{state}"]')

        def card(run, state: str):
            return column(state).locator(f'.card[data-id="{run.pk}"]')

        expect(card(etl, "running")).to_be_visible()
        expect(column("running").locator("[data-count]")).to_have_text("2")
        expect(column("suspended").locator("[data-count]")).to_have_text("1")
        expect(card(etl, "running").locator(".progress-label")).to_have_text("62%")
        expect(card(etl, "running").locator(".budget")).to_have_count(2)

        # A transition made outside the page, through the server: the card moves, both counts
        # change, no reload.
        http = logged_in_http(daphne_server.url, "olga")
        answer = http.post(f"/runs/{etl.pk}/actions/suspend/",
                           data={"reason": "maintenance window"},
                           headers={"X-CSRFToken": http.cookies["csrftoken"],
                                    "Accept": "application/json"})
        assert answer.status_code == 200, answer.text
        expect(card(etl, "suspended")).to_be_visible()
        expect(card(etl, "running")).to_have_count(0)
        expect(column("running").locator("[data-count]")).to_have_text("1")
        expect(column("suspended").locator("[data-count]")).to_have_text("2")
        expect(card(etl, "suspended")).to_contain_text("maintenance window")

        # Click Cancel on a card, confirm: it lands in Canceled, with a toast.
        card(invoices, "ready").locator("button.cancel").click()
        page.locator("#confirm-go").click()
        expect(card(invoices, "canceled")).to_be_visible()
        expect(column("canceled").locator("[data-count]")).to_have_text("2")
        expect(page.locator(".toast.success")).to_contain_text("canceled")

        # Restart the server; meanwhile a change the page cannot hear about: after the
        # reconnect the board resyncs and shows it.
        daphne_server.stop()
        expect(connection).to_have_attribute("data-status", re.compile("reconnecting|offline"))
        services.cancel(etl.pk, actor="olga", reason="while the board was away")
        daphne_server.start()
        expect(connection).to_have_attribute("data-status", "live")
        expect(card(etl, "canceled")).to_be_visible()
        expect(column("suspended").locator("[data-count]")).to_have_text("1")
        expect(column("canceled").locator("[data-count]")).to_have_text("3")
        expect(page.locator("#last-update")).to_contain_text("Updated")

        page.screenshot(path=str(Path(ARTIFACTS) / "board.png"), full_page=True)
        browser.close()
