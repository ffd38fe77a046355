"""The demo site: the real page, served by `python -m generator serve`'s server, driven in Chromium."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from generator.demo.server import make_server
from generator.paths import PROJECT_ROOT, SITE_DIR

pytestmark = pytest.mark.browser
SCREENSHOTS = PROJECT_ROOT / "test-results"


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    site_before = sorted(path.name for path in SITE_DIR.iterdir())
    server = make_server(PROJECT_ROOT / "site_demo" / "demo.toml", port=0)
    assert server.temporary_dir is not None and (server.temporary_dir / "debug" / "manifest.json").is_file()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    # Builds went to a temporary folder, removed on close; nothing was written beside the page's files.
    assert not server.temporary_dir.exists()
    assert sorted(path.name for path in SITE_DIR.iterdir()) == site_before


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
    # Stable and content-hashed scripts, their maps, and the readable script.
    expect(page.locator("#manifest tbody tr")).to_have_count(5)
    expect(page.locator("#script-tag")).to_contain_text('integrity="sha384-')
    expect(page.locator("#script-tag")).to_contain_text('src="/segment-pendo.')
    expect(page.locator("#config-path")).to_have_text(str(PROJECT_ROOT / "site_demo" / "demo.toml"))
    expect(page.locator("#config-region")).to_have_text("io")
    expect(page.locator("#subscriptions li")).to_have_text(
        [
            'Send Track Event: track when type = "track"',
            'Send Identify Event: identify when type = "identify"',
            'Send Group Event: group when type = "group"',
        ]
    )
    expect(page.locator("#waiting")).to_be_visible()
    expect(page.locator("#guide-events-state")).to_contain_text("Off in this config")

    page.locator("form[data-call=identify] input[name=id]").fill("demo-visitor-1")
    page.locator("form[data-call=identify] button").click()
    expect(page.locator("#visitor-id")).to_have_text("demo-visitor-1", timeout=15_000)
    page.locator("form[data-call=track] button").click()
    expect(page.locator(".pendo-track strong").first).to_have_text("track: Report Exported", timeout=15_000)
    expect(page.locator(".pendo-meta pre").first).to_contain_text('"id": "demo-visitor-1"')
    expect(page.locator(".pendo-decision strong", has_text='subscription "Send Track Event" matched')).to_have_count(1)
    expect(page.locator("#waiting")).to_be_hidden()

    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "demo.png"), full_page=True)
    assert errors == []
    assert left_the_machine == []
    assert Path(SCREENSHOTS / "demo.png").stat().st_size > 10_000

    # A new page load starts its own log: the previous load's calls are not shown again.
    page.reload()
    expect(page.locator("#waiting")).to_be_visible()
    page.wait_for_timeout(2_000)
    expect(page.locator(".pendo-track")).to_have_count(0)
    expect(page.locator("#waiting")).to_be_visible()


def test_guide_events_demo_shows_what_a_guide_sends_to_segment(page: Page) -> None:
    server = make_server(SITE_DIR / "guide-events.toml", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
        page.goto(url)
        expect(page.locator("#guide-events-state")).to_contain_text('guideSeen → "Pendo Guide Seen"')
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
