"""Helpers for the browser tests: log in, measure layout, scan with axe."""

from __future__ import annotations

from typing import Any

from tests.dashboard.conftest import PASSWORD
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"  # the README shows these
VIEWPORTS = {"laptop": (1280, 800), "desktop": (1600, 1000), "phone": (390, 844)}

# Every visible element whose box pokes out of the viewport, except inside a container that
# scrolls sideways on purpose (a wide table, a <pre>).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const node of document.body.querySelectorAll("*")) {
    if (node.closest(".table-scroll, pre, dialog:not([open])")) continue;
    const box = node.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > width + 1 || box.left < -1) {
      const name = `${node.tagName.toLowerCase()}.${node.className}`;
      out.push(`${name} ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, out: out.slice(0, 10)};
}"""


def size(name: str) -> dict[str, int]:
    width, height = VIEWPORTS[name]
    return {"width": width, "height": height}


def open_page(playwright: Any, viewport: str) -> tuple[Any, Any, list[str]]:
    """Debian's Chromium with one page at a named viewport; the list collects script errors."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport=size(viewport))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return browser, page, errors


def log_in(page: Any, base_url: str, username: str = "olga") -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def assert_fits(page: Any) -> None:
    """No horizontal scrolling and no element wider than the viewport."""
    layout = page.evaluate(OVERFLOWING)
    assert layout["scroll"] <= layout["width"], layout
    assert not layout["out"], layout


def serious_violations(page: Any) -> list[str]:
    """axe-core (bundled, pinned by axe-playwright-python) on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            f"{[n['target'] for n in v['nodes'][:3]]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
