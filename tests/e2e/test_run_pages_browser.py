"""Run page, run list and bulk preview in headless Debian Chromium: they work on a phone,
share the board's colours and time format, the list is live, and axe finds nothing serious."""

from __future__ import annotations

import re

import pytest

from runs import services
from runs.presentation import STATE_COLOURS
from runs.states import RunState
from tests.e2e.browser import (
    SCREENSHOTS,
    assert_fits,
    log_in,
    open_page,
    serious_violations,
    size,
)
from tests.e2e.test_board_browser import logged_in_http

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_MS = 15_000
LONG_REASON = ("the upstream warehouse export was still running when this attempt began, so "
               "the operator paused it until the nightly window closes")


def hex_to_rgb(colour: str) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def test_run_pages_on_every_screen(daphne_server, operator, make_run, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    run = services.submit(name="nightly-warehouse-export-with-a-long-name", queue="analytics",
                          budget={"tokens": 300})
    services.lease(executor="exec-1")
    services.start(run.pk, executor="exec-1")
    services.heartbeat(run.pk, executor="exec-1", consumed={"tokens": 400})  # over budget
    failed = make_run(RunState.FAILED, name="import-orders", last_error="KeyError: 'x'")
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, "desktop")
        expect.set_options(timeout=WAIT_MS)
        log_in(page, daphne_server.url)
        board_failed = page.locator('.column[data-state="failed"]').evaluate(
            "node => getComputedStyle(node).borderTopColor")

        # The run page: a real budget share in the "over" colour; timeline with headers.
        http = logged_in_http(daphne_server.url, "olga")
        http.post(f"/runs/{run.pk}/actions/resume/",
                  headers={"X-CSRFToken": http.cookies["csrftoken"], "Accept": "application/json"})
        page.goto(f"{daphne_server.url}/runs/{run.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
        expect(page.locator(".meter-text")).to_have_text("400/300 (133%)")
        assert page.locator(".meter-bar").evaluate(
            "node => node.classList.contains('over')")
        expect(page.locator(".move-head")).to_be_visible()
        expect(page.locator("#timeline .move-duration").first).to_have_text(re.compile(r"\d+s"))
        expect(page.locator("#timeline time").first).to_have_attribute("title", re.compile("UTC"))
        destructive = page.locator('form[data-action="cancel"] button')
        harmless = page.locator('form[data-action="resume"] button')
        assert destructive.evaluate("b => getComputedStyle(b).backgroundColor") != \
            harmless.evaluate("b => getComputedStyle(b).backgroundColor")
        assert serious_violations(page) == []
        page.screenshot(path=str(SCREENSHOTS / "run-page.png"), full_page=False)

        # 3. On a phone the timeline's reason keeps a readable width and nothing overflows.
        http.post(f"/runs/{run.pk}/actions/cancel/", data={"reason": LONG_REASON},
                  headers={"X-CSRFToken": http.cookies["csrftoken"], "Accept": "application/json"})
        page.set_viewport_size(size("phone"))
        reason = page.locator("#timeline .move-reason").last
        expect(reason).to_have_text(LONG_REASON)
        assert reason.bounding_box()["width"] > 250
        assert_fits(page)
        page.screenshot(path=str(SCREENSHOTS / "run-page-phone.png"), full_page=False)

        # 7. The run list: the failed badge wears the board's failed colour; times name the
        # zone; live: a change made elsewhere marks its row.
        page.set_viewport_size(size("laptop"))
        page.goto(f"{daphne_server.url}/runs/")
        badge = page.locator(f'tr[data-run-id="{failed.pk}"] .rp-state')
        assert badge.evaluate("node => getComputedStyle(node).backgroundColor") == \
            board_failed == hex_to_rgb(STATE_COLOURS["failed"])
        expect(page.locator("#runs time").first).to_have_text(re.compile(r" UTC$"))
        assert serious_violations(page) == []
        http.post(f"/runs/{failed.pk}/actions/rerun/",
                  headers={"X-CSRFToken": http.cookies["csrftoken"], "Accept": "application/json"})
        expect(page.locator("#live-bar")).to_be_visible()
        expect(page.locator("#live-bar-text")).to_contain_text("since this page loaded")
        page.set_viewport_size(size("phone"))
        assert_fits(page)

        # Select a row and preview an action on it alone; the preview passes axe too.
        page.set_viewport_size(size("desktop"))
        page.goto(f"{daphne_server.url}/runs/?state=failed")
        page.locator(f'input[name="ids"][value="{failed.pk}"]').check()
        expect(page.locator("#selection-count")).to_have_text("1 selected.")
        page.select_option("#selection-form select[name=action]", "rerun")
        page.locator("#selection-preview").click()
        expect(page.locator("#eligible")).to_contain_text("1 run")
        assert serious_violations(page) == []
        assert not errors, errors
        browser.close()
