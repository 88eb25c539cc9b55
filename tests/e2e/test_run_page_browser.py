"""From the board to a run page in headless Debian Chromium against a real daphne server:
open a run, cancel it from its page, watch the answer, the buttons and the timeline follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs import services
from tests.dashboard.conftest import PASSWORD
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.e2e.test_board_browser import logged_in_http

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 15_000


def test_open_a_run_from_the_board_and_cancel_it_from_its_page(daphne_server, operator,
                                                                monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    run = services.submit(name="nightly-etl", queue="analytics", payload={"day": "<today>"},
                          budget={"cost_cents": 500})
    services.lease(executor="exec-1")
    services.start(run.pk, executor="exec-1")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        expect.set_options(timeout=WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{daphne_server.url}/")
        page.fill("input[name=username]", "olga")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        # From the board: the card's name opens the run page.
        page.locator(f'.card[data-id="{run.pk}"] a.card-name').click()
        page.wait_for_url(f"**/runs/{run.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
        expect(page.locator("#run-answer")).to_contain_text("Running on exec-1")
        moves = page.locator("#timeline li.move")
        expect(moves).to_have_count(3)
        expect(page.locator("#payload")).to_contain_text('"day": "<today>"')
        expect(page.locator('form[data-action="rerun"]')).to_be_hidden()

        # A change made elsewhere (another operator suspends it): no reload needed.
        http = logged_in_http(daphne_server.url, "olga")
        answer = http.post(f"/runs/{run.pk}/actions/suspend/", data={"reason": "maintenance"},
                           headers={"X-CSRFToken": http.cookies["csrftoken"],
                                    "Accept": "application/json"})
        assert answer.status_code == 200, answer.text
        expect(moves).to_have_count(4)
        expect(page.locator("#run-answer")).to_have_text("Suspended by olga: maintenance")
        expect(page.locator('form[data-action="resume"]')).to_be_visible()
        expect(page.locator('form[data-action="suspend"]')).to_be_hidden()

        # Cancel from the run page: the timeline grows, the answer and buttons follow.
        cancel = page.locator('form[data-action="cancel"]')
        cancel.locator("input[name=reason]").fill("wrong input file")
        cancel.locator("button").click()
        expect(moves).to_have_count(5)
        expect(moves.last.locator(".move-states")).to_have_text("suspended → canceled")
        expect(moves.last.locator(".move-actor")).to_have_text("olga")
        expect(page.locator("#run-answer")).to_have_text(
            "Finished: canceled by olga: wrong input file")
        expect(page.locator("#run-state")).to_have_text("Canceled")
        expect(cancel).to_be_hidden()
        expect(page.locator("#action-error")).to_be_hidden()

        # Rerun it: the page links to the new run.
        page.locator('form[data-action="rerun"] button').click()
        expect(page.locator("#rerun-list a")).to_have_count(1)
        assert not errors, errors
        page.screenshot(path=str(Path(ARTIFACTS) / "run-page.png"), full_page=True)
        browser.close()
