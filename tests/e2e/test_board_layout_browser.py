"""The operator's day on the board, in headless Debian Chromium against a real daphne server:
it fits at 1280 and 1600 px and on a phone, its claims are honest (stale, offline, finished),
destructive clicks ask first, the live stream pauses, and axe finds nothing serious."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.states import RunState
from tests.e2e.browser import (
    SCREENSHOTS,
    assert_fits,
    log_in,
    open_page,
    serious_violations,
    size,
)
from tests.e2e.test_board_browser import board_data, logged_in_http

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_MS = 15_000
STATES = [state.value for state in RunState]
VISIBLE_HEADERS = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll(".column-head")].map((head) => {
    const box = head.getBoundingClientRect();
    const title = head.querySelector("h3");
    const count = head.querySelector("[data-count]").getBoundingClientRect();
    return {state: head.closest(".column").dataset.state, left: box.left, right: box.right,
            countRight: count.right, countWidth: count.width,
            clipped: title.scrollWidth > title.clientWidth + 1, width};
  });
}"""


def test_a_day_on_the_board_at_three_sizes(daphne_server, operator, make_run, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    runs = board_data(make_run)
    now = timezone.now()
    make_run(RunState.READY, name="second-in-line", queue="billing")
    overdue = make_run(RunState.RETRY_WAIT, name="overdue-retry", attempts=1,
                       next_attempt_at=now - timedelta(seconds=5), last_error="boom")
    # Silent for 100 s with 30 s of lease left: it missed beats (one every 43 s).
    silent = make_run(RunState.RUNNING, name="silent-worker", heartbeat_at=now - timedelta(
        seconds=100), lease_expires_at=now + timedelta(seconds=30), progress=40,
        state_changed_at=now - timedelta(minutes=5))
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, "laptop")
        expect.set_options(timeout=WAIT_MS)
        log_in(page, daphne_server.url)
        expect(page.locator("#connection")).to_have_attribute("data-status", "live")

        def column(state: str):
            return page.locator(f'.column[data-state="{state}"]')

        def card(run, state: str):
            return column(state).locator(f'.card[data-id="{run.pk}"]')

        # 1. All nine headers and their counts in view, no sideways scrolling, at 1280 and 1600.
        for name in ("laptop", "desktop"):
            page.set_viewport_size(size(name))
            heads = page.evaluate(VISIBLE_HEADERS)
            assert [head["state"] for head in heads] == STATES
            for head in heads:
                assert head["left"] >= 0 and head["right"] <= head["width"], (name, head)
                assert head["countRight"] <= head["width"] and head["countWidth"] > 0, head
                assert not head["clipped"], (name, head)
            assert_fits(page)
        page.screenshot(path=str(SCREENSHOTS / "board.png"), full_page=False)

        # 9. Honest cards: finished runs "ago", a due retry says so once, the title counts.
        expect(column("completed").locator(".card").first).to_contain_text(re.compile(
            r"Completed \d+s ago"))
        expect(card(overdue, "retry_wait").locator(".countdown")).to_have_text("retry due now")
        expect(page).to_have_title(re.compile(r"^\(1 failed\) Board · Runboard$"))
        # 4. Stale is judged by missed heartbeats and explained on hover.
        badge = card(silent, "running").locator(".badge.stale")
        expect(badge).to_be_visible()
        expect(badge).to_have_attribute("title", re.compile(r"No heartbeat for 1m 4\ds; its "
                                                            r"executor beats about every 43s"))
        fresh = make_run(RunState.RUNNING, name="fresh-worker", progress=10,
                         state_changed_at=timezone.now() - timedelta(seconds=30),
                         heartbeat_at=timezone.now() - timedelta(seconds=1.5),
                         lease_expires_at=timezone.now() + timedelta(seconds=4.5))
        page.reload()
        expect(card(fresh, "running").locator(".lease-left")).to_contain_text("lease")
        expect(card(fresh, "running").locator(".badge.stale")).to_be_hidden()
        # Accessibility: buttons name their run; nothing serious for axe.
        expect(card(runs["invoices"], "ready").locator("button.cancel")).to_have_attribute(
            "aria-label", f"Cancel send-invoices {runs['invoices'].short_id}")
        assert serious_violations(page) == []

        # Friction: Cancel asks first, with a reason; the card then says who and why.
        card(runs["invoices"], "ready").locator("button.cancel").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_be_visible()
        dialog.locator("input[name=reason]").fill("double booked")
        dialog.locator("#confirm-go").click()
        expect(card(runs["invoices"], "canceled")).to_contain_text("by olga: double booked")

        # A hovered card stays put: its column waits until the pointer leaves.
        http = logged_in_http(daphne_server.url, "olga")
        headers = {"X-CSRFToken": http.cookies["csrftoken"], "Accept": "application/json"}
        others = column("ready").locator(".card")
        target = others.first
        kept_id = target.get_attribute("data-id")
        target.hover()
        leaving = others.nth(1).get_attribute("data-id")
        assert http.post(f"/runs/{leaving}/actions/cancel/", headers=headers).status_code == 200
        expect(column("canceled").locator(f'.card[data-id="{leaving}"]')).to_be_visible()
        expect(column("ready").locator(f'.card[data-id="{leaving}"]')).to_be_visible()
        page.mouse.move(1, 1)
        expect(column("ready").locator(f'.card[data-id="{leaving}"]')).to_have_count(0)
        expect(column("ready").locator(f'.card[data-id="{kept_id}"]')).to_be_visible()

        # Pause: frames are counted, not applied; resume catches up.
        page.keyboard.press("p")
        pause = page.locator("#pause-live")
        expect(pause).to_have_attribute("aria-pressed", "true")
        assert http.post(f"/runs/{runs['etl'].pk}/actions/suspend/", data={"reason": "later"},
                         headers=headers).status_code == 200
        expect(pause).to_contain_text("updates waiting")
        expect(card(runs["etl"], "running")).to_be_visible()
        pause.click()
        expect(card(runs["etl"], "suspended")).to_be_visible()

        # Shortcuts: / searches, ? helps, j moves between cards.
        page.keyboard.press("/")
        expect(page.locator("input[name=name]")).to_be_focused()
        page.locator("input[name=name]").blur()
        page.keyboard.press("?")
        expect(page.locator("#help-dialog")).to_be_visible()
        page.keyboard.press("Escape")
        page.keyboard.press("j")
        expect(page.locator(".card a.card-name").first).to_be_focused()

        # 8. Offline: the board dims and its clocks stop claiming.
        daphne_server.stop()
        expect(page.locator("#board-page")).to_have_class(re.compile("is-offline"))
        clock = column("running").locator("time.tick").first
        before = clock.text_content()
        page.wait_for_timeout(2200)  # two ticks of the clock that must not move
        assert clock.text_content() == before
        daphne_server.start()
        expect(page.locator("#connection")).to_have_attribute("data-status", "live")
        expect(page.locator("#board-page")).not_to_have_class(re.compile("is-offline"))

        # The phone: counts on top, states one under another, nothing wider than the screen.
        page.set_viewport_size(size("phone"))
        summary = page.locator("#state-summary")
        expect(summary).to_be_visible()
        expect(summary.locator("li")).to_have_count(9)
        expect(summary.locator('[data-summary-count="failed"]')).to_have_text("1")
        tops = [box["y"] for box in (column(state).bounding_box() for state in STATES)]
        assert tops == sorted(tops) and len(set(tops)) == 9  # stacked, in lifecycle order
        assert_fits(page)
        page.screenshot(path=str(SCREENSHOTS / "board-phone.png"), full_page=False)
        assert not errors, errors
        browser.close()
