"""The Queues and Executors pages in headless Debian Chromium against a real daphne server:
real data, a desktop and a phone viewport without sideways scrolling, no serious or critical
axe-core finding, and a queue paused from the page that the next lease skips."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from runs import services
from runs.queues import paused_queue_names
from tests.dashboard.conftest import PASSWORD
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.ops.conftest import ensure_queue_operators

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 15_000
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
BLOCKING_IMPACTS = {"serious", "critical"}


def seed_fleet() -> None:
    """Two queues with backlog, work in hand and throughput; two executors, one of them idle."""
    for index in range(3):
        services.submit(name="send-digest", queue="emails", payload={"n": index})
    for index in range(5):
        services.submit(name="build-report", queue="reports", payload={"n": index})
    done = services.lease(executor="exec-1", queues=["reports"])[0]
    services.start(done.pk, executor="exec-1")
    services.complete(done.pk, executor="exec-1", result={"rows": 3})
    working = services.lease(executor="exec-1", queues=["reports"])[0]
    services.start(working.pk, executor="exec-1")
    services.heartbeat(working.pk, executor="exec-1", progress=40)
    services.lease(executor="exec-2", queues=["reports"])


def blocking_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): "
            + "; ".join(f"{n['target']} {n['failureSummary']} {n['any'][:1]}"
                        for n in v["nodes"][:3])
            for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]


def open_queues_page(browser: Any, url: str, viewport: dict[str, int]) -> Any:
    """A new page at `viewport`, logged in as the queue operator, on the Queues page."""
    page = browser.new_page(viewport=viewport)
    page.goto(f"{url}/queues/")
    page.fill("input[name=username]", "quinn")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/queues/")
    return page


def fits_the_width(page: Any) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_queues_and_executors_pages_at_both_sizes_and_pausing_a_queue(daphne_server,
                                                                      monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM beside Playwright's loop
    user = User.objects.create_user("quinn", password=PASSWORD)
    user.groups.add(ensure_queue_operators())
    seed_fleet()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=WAIT_MS)
        for size, viewport in VIEWPORTS.items():
            page = open_queues_page(browser, daphne_server.url, viewport)

            emails = page.locator('#queues tr[data-queue="emails"]')
            reports = page.locator('#queues tr[data-queue="reports"]')
            expect(emails.locator('[data-label="Ready"]')).to_have_text("3")
            expect(reports.locator('[data-label="Running"]')).to_contain_text("1")
            expect(reports.locator('[data-label="Last hour"]')).to_contain_text("1 completed")
            assert fits_the_width(page), f"the Queues page scrolls sideways on the {size}"
            assert blocking_violations(page) == [], size
            page.screenshot(path=str(ARTIFACTS / f"queues-{size}.png"), full_page=True)

            page.get_by_role("link", name="Executors").click()
            page.wait_for_url("**/executors/")
            exec_1 = page.locator('#executors tr[data-executor="exec-1"]')
            expect(exec_1.locator('[data-label="In hand"]')).to_contain_text("1 running")
            expect(exec_1.locator('[data-label="Last hour"]')).to_contain_text("1 completed")
            heartbeat = exec_1.locator('[data-label="Last heartbeat"] time')
            assert heartbeat.get_attribute("title").endswith(" UTC")
            expect(page.locator('#executors tr[data-executor="exec-2"]')).to_contain_text(
                "none yet")
            assert fits_the_width(page), f"the Executors page scrolls sideways on the {size}"
            assert blocking_violations(page) == [], size
            page.screenshot(path=str(ARTIFACTS / f"executors-{size}.png"), full_page=True)
            page.close()

        # Pause `emails` from the Queues page: the page says so, and a lease skips it.
        page = open_queues_page(browser, daphne_server.url, VIEWPORTS["desktop"])
        emails = page.locator('#queues tr[data-queue="emails"]')
        emails.get_by_label("Reason to pause emails").fill("SMTP outage")
        emails.get_by_role("button", name="Pause emails").click()
        expect(page.locator(".messages")).to_contain_text("queue emails paused")
        expect(emails.locator(".ops-badge")).to_have_text("Paused")
        expect(emails).to_contain_text("by quinn")
        expect(emails).to_contain_text("SMTP outage")
        expect(page.locator("#queue-events li").first).to_contain_text("Paused emails by quinn")
        assert paused_queue_names() == ["emails"]
        leased = services.lease(executor="exec-3", limit=10)
        assert [run.queue for run in leased] == ["reports", "reports"]
        assert services.lease(executor="exec-3", queues=["emails"]) == []
        assert blocking_violations(page) == []

        emails.get_by_role("button", name="Resume emails").click()
        expect(emails.locator(".ops-badge")).to_have_text("Active")
        assert len(services.lease(executor="exec-3", queues=["emails"], limit=10)) == 3
        browser.close()
