"""The demo site: the real page, served by `python -m generator serve`'s server, driven in Chromium."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from generator.demo.server import make_server
from generator.paths import PROJECT_ROOT

pytestmark = pytest.mark.browser
SCREENSHOTS = PROJECT_ROOT / "test-results"


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    server = make_server(PROJECT_ROOT / "site_demo" / "demo.toml", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_identify_on_the_demo_page_shows_the_pendo_visitor(page: Page, demo_url: str) -> None:
    left_the_machine: list[str] = []

    def only_loopback(route: Route) -> None:
        if route.request.url.startswith(demo_url):
            route.continue_()
        else:
            left_the_machine.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo_url)
    expect(page.locator("#manifest tbody tr")).to_have_count(3)
    expect(page.locator("#script-tag")).to_contain_text('integrity="sha384-')

    page.locator("form[data-call=identify] input[name=id]").fill("demo-visitor-1")
    page.locator("form[data-call=identify] button").click()
    expect(page.locator("#visitor-id")).to_have_text("demo-visitor-1", timeout=15_000)
    page.locator("form[data-call=track] button").click()
    expect(page.locator(".pendo-track strong").first).to_have_text("track: Report Exported", timeout=15_000)
    expect(page.locator(".pendo-meta pre").first).to_contain_text('"id": "demo-visitor-1"')
    expect(page.locator(".pendo-decision strong", has_text='subscription "Send Track Event" matched')).to_have_count(1)

    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "demo.png"), full_page=True)
    assert errors == []
    assert left_the_machine == []
    assert Path(SCREENSHOTS / "demo.png").stat().st_size > 10_000


def test_guide_events_demo_shows_what_a_guide_sends_to_segment(page: Page, tmp_path: Path) -> None:
    server = make_server(PROJECT_ROOT / "site_demo" / "guide-events.toml", port=0, build_root=tmp_path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
        page.goto(url)
        page.locator("form[data-call=identify] button").click()
        expect(page.locator("#visitor-id")).to_have_text("user-42", timeout=15_000)
        # The agent loads the guide list for the identified visitor; the page's button shows one of them.
        page.wait_for_function("() => !!pendo.findGuideById('guideTour')", timeout=15_000)
        page.locator("button[data-guide=guideTour]").click()
        page.locator("#pendo-button-next").click(timeout=15_000)
        guide_events = page.locator(".segment-guide-event strong")
        expect(guide_events.filter(has_text="Segment got track: Pendo Guide Advanced")).to_have_count(1, timeout=15_000)
        expect(guide_events.filter(has_text="Segment got track: Pendo Guide Seen")).to_have_count(2)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "demo-guide-events.png"), full_page=True)
        assert errors == []
    finally:
        server.shutdown()
        server.server_close()
