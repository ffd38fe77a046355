"""A single-page app as teams build one: analytics.js from npm and the ES module, bundled, in real Chromium.

The app is bundled by the pinned esbuild from @segment/analytics-next and segment-pendo.mjs copied into its source
tree, passes pendoPlugin to AnalyticsBrowser.load({ plugins }) or analytics.register(), assigns no global, and
routes with pushState. The real Pendo agent is served locally; nothing leaves the machine. And the script in such an
app without its global: what a debug build says about it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from generator.bundle import find_esbuild
from generator.demo.guides import snoozable
from generator.paths import NODE_MODULES
from generator.pipeline import build
from tests.conftest import DEFAULT_API_KEY, BuildScript, default_config
from tests.support.fake_internet import SITE, FakeInternet, wait_until
from tests.support.page_sites import content_security_policy
from tests.support.pendo_guides import GuideHost
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

# static/debug-log.js: how long after the load event a debug build waits for its client.
NO_CLIENT_WAIT_MS = 5_000

# How the app hands the plugin to analytics.js: the two ways analytics.js 2.0 takes a plugin.
LOADERS = {
    "plugins": "export const analytics = AnalyticsBrowser.load({ writeKey: 'wk_test_1234', plugins: [pendoPlugin] });",
    "register": (
        "export const analytics = AnalyticsBrowser.load({ writeKey: 'wk_test_1234' });\n"
        "analytics.register(pendoPlugin);"
    ),
}
APP = """
import { AnalyticsBrowser } from '@segment/analytics-next';
import { pendoPlugin } from './segment-pendo/segment-pendo.mjs';

LOADER

// The app's router: a link changes the URL with pushState and tells Segment, as single-page apps do.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-route]');
  if (link) {
    event.preventDefault();
    history.pushState({}, '', link.getAttribute('href'));
    analytics.page();
  }
});

document.getElementById('sign-in').addEventListener('click', () => {
  analytics.identify('spa-user', { name: 'Ada', plan: 'pro' });
  analytics.group('acct-1', { tier: 'gold', seats: 12 });
  analytics.track('Report Viewed', { report: 'weekly' });
});

analytics.page();
"""
PAGE = """<!doctype html>
<html><head><title>Reports</title><script src="/assets/app.js" defer></script></head>
<body><h1>Reports</h1><button id="sign-in">Sign in</button>
<a data-route href="/reports/7">Report 7</a> <a data-route href="/settings">Settings</a></body></html>
"""
# Paths the app's server answers with the same page, as a single-page app's server does for its routes.
ROUTES = ("/", "/reports/7", "/settings")


def bundle_app(work: Path, config_text: str, loaders: dict[str, str]) -> dict[str, Path]:
    """Build the module into the app's source tree, then bundle the app once per way of passing the plugin."""
    (work / "pendo.toml").write_text(config_text)
    build(work / "pendo.toml", work / "src" / "segment-pendo", output_format="esm")
    binary = find_esbuild()
    assert binary is not None
    bundles = {}
    for name, loader in loaders.items():
        (work / "src" / f"{name}.js").write_text(APP.replace("LOADER", loader))
        subprocess.run(
            [
                str(binary),
                f"src/{name}.js",
                "--bundle",
                "--minify",
                "--format=iife",
                "--target=es2017",
                f"--outfile=dist/{name}.js",
                "--log-level=error",
            ],
            cwd=work,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
            check=True,
        )
        bundles[name] = work / "dist" / f"{name}.js"
    return bundles


@pytest.fixture(scope="session")
def app_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The app, once per way of passing the plugin."""
    return bundle_app(tmp_path_factory.mktemp("spa"), default_config(), LOADERS)


def pendo_state(page: Page) -> tuple[Any, Any]:
    """The agent's visitor and account ids."""
    state = page.evaluate(
        "() => window.pendo && pendo.isReady && pendo.isReady() ? [pendo.getVisitorId(), pendo.getAccountId()] : null"
    )
    return (state[0], state[1]) if state else (None, None)


def merged_metadata(internet: FakeInternet, kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for meta in internet.metadata():
        merged.update(meta.get(kind) or {})
    return merged


def load_urls(internet: FakeInternet) -> list[str]:
    return [event["url"] for event in internet.pendo_events("load")]


@pytest.mark.parametrize("loader", list(LOADERS))
def test_the_module_in_a_bundled_single_page_app(
    loader: str, app_bundles: dict[str, Path], page: Page, internet: FakeInternet
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    internet.serve_file("/assets/app.js", app_bundles[loader])
    for route in ROUTES:
        internet.serve(route, PAGE)
    page.goto(SITE + "/")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    assert internet.agent_requests == [f"https://cdn.pendo.io/agent/static/{DEFAULT_API_KEY}/pendo.js"]

    page.click("#sign-in")
    wait_until(
        page,
        lambda: (
            pendo_state(page) == ("spa-user", "acct-1")
            and internet.tracks() != []
            and {"name", "plan"} <= set(merged_metadata(internet, "visitor"))
            and "tier" in merged_metadata(internet, "account")
        ),
    )
    assert internet.tracks() == [("Report Viewed", {"report": "weekly"}, "spa-user")]
    visitor = merged_metadata(internet, "visitor")
    assert (visitor["id"], visitor["name"], visitor["plan"]) == ("spa-user", "Ada", "pro")
    assert merged_metadata(internet, "account") == {"id": "acct-1", "tier": "gold", "seats": 12}

    # Two route changes: the agent sees each pushState navigation as a page load of its own.
    page.click("a[href='/reports/7']")
    page.click("a[href='/settings']")
    wait_until(page, lambda: {SITE + "/reports/7", SITE + "/settings"} <= set(load_urls(internet)))
    assert page.url == SITE + "/settings"
    segment_pages = [event for event in internet.segment_events if event.get("type") == "page"]
    assert len(segment_pages) == 3

    # A reload on a deep link: Pendo starts with the visitor and account analytics.js remembers.
    internet.pendo_requests.clear()
    page.goto(SITE + "/reports/7")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    wait_until(page, lambda: SITE + "/reports/7" in load_urls(internet))
    assert pendo_state(page) == ("spa-user", "acct-1")
    reloaded = next(event for event in internet.pendo_events("load") if event["url"] == SITE + "/reports/7")
    assert (reloaded["visitor_id"], reloaded["account_id"]) == ("spa-user", "acct-1")

    # No global was needed or made: analytics.js stays inside the app's bundle.
    assert page.evaluate("() => 'analytics' in window") is False
    assert errors == []
    assert internet.unexpected == []


def segment_pendo_console(page: Page) -> list[tuple[str, str]]:
    """(type, text) of every console message the script writes, collected from now on."""
    messages: list[tuple[str, str]] = []
    page.on("console", lambda message: messages.append((message.type, message.text)))
    return messages


@pytest.mark.parametrize("debug", [True, False])
def test_a_script_that_never_finds_its_client_says_so_in_debug_builds_only(
    debug: bool, build_script: BuildScript, shop_factory: Callable[[Path], Shop]
) -> None:
    """An app that loads analytics.js from npm and assigns no global: the debug build names the global and the fixes."""
    shop = shop_factory(build_script(default_config() + ("[build]\ndebug = true\n" if debug else "")))
    console = segment_pendo_console(shop.page)
    shop.open(with_snippet=False)
    shop.page.wait_for_timeout(NO_CLIENT_WAIT_MS + 1_000)
    warnings = [text for kind, text in console if kind == "warning" and text.startswith("[segment-pendo]")]
    if not debug:
        assert not any("segment-pendo" in text for _, text in console)
        return
    assert warnings == [
        "[segment-pendo] no analytics client at window.analytics 5 s after the page loaded, so nothing reaches "
        "Pendo. With analytics.js from npm, either pass pendoPlugin from segment-pendo.mjs (segment-pendo build "
        "--format esm) to AnalyticsBrowser.load({ writeKey, plugins: [pendoPlugin] }), or assign window.analytics = "
        "analytics (what AnalyticsBrowser.load returns; for RudderStack, the RudderAnalytics instance)"
    ]
    logged = shop.run("() => segmentPendoDebug.log.filter((entry) => entry.kind === 'no client')")
    assert logged == [{"kind": "no client", "detail": {"global": "analytics", "message": warnings[0][16:]}}]


def test_the_debug_build_tells_a_blocked_analytics_js_apart_and_is_quiet_when_connected(
    build_script: BuildScript, shop_factory: Callable[[Path], Shop]
) -> None:
    script = build_script(default_config() + "[build]\ndebug = true\n")
    blocked = shop_factory(script)
    console = segment_pendo_console(blocked.page)
    blocked.internet.segment_behaviour = "abort"
    blocked.open()
    blocked.page.wait_for_timeout(NO_CLIENT_WAIT_MS + 1_000)
    warnings = [text for kind, text in console if kind == "warning"]
    assert warnings == [
        "[segment-pendo] window.analytics still holds the snippet's queue 5 s after the page loaded: its library "
        "never loaded (blocked, or a wrong write key?), so nothing reaches Pendo"
    ]
    blocked.internet.segment_behaviour = "serve"
    console.clear()
    blocked.open(page_code="analytics.track('Signed Up');")
    blocked.wait_for_pendo()
    blocked.page.wait_for_timeout(NO_CLIENT_WAIT_MS + 1_000)
    assert [text for kind, text in console if kind == "warning"] == []


def test_the_module_under_a_nonce_only_content_security_policy(
    tmp_path: Path, page: Page, internet: FakeInternet
) -> None:
    """With nonce = "from_script" the agent's tag carries the page's nonce, taken from the app's own script."""
    app = bundle_app(tmp_path, default_config(nonce="from_script"), {"plugins": LOADERS["plugins"]})["plugins"]
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)
    nonce = "bm9uY2UtZm9yLXRlc3Rz"
    internet.serve_file("/assets/app.js", app)
    internet.serve(
        "/",
        PAGE.replace('<script src="/assets/app.js" defer>', f'<script nonce="{nonce}" src="/assets/app.js" defer>'),
        headers={"Content-Security-Policy": content_security_policy(nonce)},
    )
    page.goto(SITE + "/")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    page.click("#sign-in")
    wait_until(page, lambda: internet.tracks() != [])
    assert internet.tracks() == [("Report Viewed", {"report": "weekly"}, "spa-user")]
    agent_nonce = page.evaluate("() => document.querySelector('script[src*=\"/agent/static/\"]').nonce")
    assert agent_nonce == nonce
    assert violations == []


def test_with_the_script_still_on_the_page_pendo_gets_each_call_once(
    tmp_path: Path, page: Page, internet: FakeInternet, build_script: BuildScript
) -> None:
    """A team moving to the module keeps the old script tag and the global: the first copy to start serves the page."""
    loader = LOADERS["plugins"] + "\nwindow.analytics = analytics;"
    app = bundle_app(tmp_path, default_config(), {"both": loader})["both"]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    internet.serve_file("/assets/app.js", app)
    internet.serve_file("/js/segment-pendo.min.js", build_script())
    internet.serve("/", PAGE.replace("<title>", '<script src="/js/segment-pendo.min.js"></script><title>'))
    page.goto(SITE + "/")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    # Counted at the agent: Pendo's own batching could merge two identical events.
    page.evaluate(
        """() => { const track = pendo.track; window.trackCalls = 0;
        pendo.track = function () { window.trackCalls++; return track.apply(this, arguments); }; }"""
    )
    page.click("#sign-in")
    wait_until(page, lambda: internet.tracks() != [] and pendo_state(page) == ("spa-user", "acct-1"))
    page.wait_for_timeout(1_000)
    assert page.evaluate("() => window.trackCalls") == 1
    assert internet.tracks() == [("Report Viewed", {"report": "weekly"}, "spa-user")]
    assert len(internet.agent_requests) == 1
    assert errors == [] and internet.unexpected == []


def test_a_plugin_registered_twice_sends_each_call_once(tmp_path: Path, page: Page, internet: FakeInternet) -> None:
    """In plugins and with register() (or in an effect React's strict mode runs twice): Pendo gets each call once."""
    twice = LOADERS["plugins"] + "\nanalytics.register(pendoPlugin);"
    app = bundle_app(tmp_path, default_config(), {"twice": twice})["twice"]
    internet.serve_file("/assets/app.js", app)
    internet.serve("/", PAGE)
    page.goto(SITE + "/")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    page.evaluate(
        """() => { const track = pendo.track; window.trackCalls = 0;
        pendo.track = function () { window.trackCalls++; return track.apply(this, arguments); }; }"""
    )
    page.click("#sign-in")
    wait_until(page, lambda: internet.tracks() != [] and pendo_state(page) == ("spa-user", "acct-1"))
    page.wait_for_timeout(1_000)
    assert page.evaluate("() => window.trackCalls") == 1
    assert len(internet.agent_requests) == 1
    assert internet.unexpected == []


# The app asks for consent as Segment documents it: createWrapper from @segment/analytics-consent-tools, with a
# variable and a callback list standing in for the consent manager.
CONSENT_LOADER = """
import { createWrapper } from '@segment/analytics-consent-tools';

let categories = { analytics: false };
const listeners = [];
const withConsentManager = createWrapper({
  getCategories: () => categories,
  registerOnConsentChanged: (onChange) => listeners.push(onChange),
});
window.chooseAnalytics = (granted) => {
  categories = { ...categories, analytics: granted };
  listeners.forEach((onChange) => onChange(categories));
};
export const analytics = withConsentManager(new AnalyticsBrowser());
analytics.load({ writeKey: 'wk_test_1234', plugins: [pendoPlugin] });
"""


def test_the_module_waits_for_consent_like_the_script(tmp_path: Path, page: Page, internet: FakeInternet) -> None:
    config = default_config() + '\n[consent]\ncategories = ["analytics"]\n'
    app = bundle_app(tmp_path, config, {"consent": CONSENT_LOADER})["consent"]
    internet.serve_file("/assets/app.js", app)
    internet.serve("/", PAGE)
    page.goto(SITE + "/")
    page.click("#sign-in")
    page.wait_for_timeout(1_500)
    assert internet.agent_requests == [] and internet.pendo_requests == []
    assert page.evaluate("() => window.pendo === undefined || !pendo.isReady")

    page.evaluate("() => chooseAnalytics(true)")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    wait_until(page, lambda: pendo_state(page) == ("spa-user", "acct-1"))
    page.click("#sign-in")
    wait_until(page, lambda: internet.tracks() != [])
    page.wait_for_timeout(500)
    # The track made before consent was held back, not replayed.
    assert internet.tracks() == [("Report Viewed", {"report": "weekly"}, "spa-user")]
    assert internet.unexpected == []


def test_guide_events_from_the_module_reach_segment_and_never_pendo(
    tmp_path: Path, page: Page, internet: FakeInternet, context: BrowserContext
) -> None:
    """[guide_events] through the module: the agent's guide events go to the app's own analytics.js instance."""
    GuideHost(context, [snoozable()])
    config = default_config() + "[guide_events]\nenabled = true\n"
    app = bundle_app(tmp_path, config, {"plugins": LOADERS["plugins"]})["plugins"]
    internet.serve_file("/assets/app.js", app)
    internet.serve("/", PAGE)
    page.goto(SITE + "/")
    page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)
    page.click("#pendo-button-snooze", timeout=10_000)
    names = ["Pendo Guide Seen", "Pendo Guide Button Clicked", "Pendo Guide Snoozed"]

    def guide_calls() -> list[dict[str, Any]]:
        return [event for event in internet.segment_events if event.get("event", "").startswith("Pendo ")]

    wait_until(page, lambda: len(guide_calls()) >= len(names))
    page.wait_for_timeout(500)
    assert sorted(event["event"] for event in guide_calls()) == sorted(names)
    assert all(event["integrations"]["Pendo Web (segment-pendo)"] is False for event in guide_calls())
    assert internet.tracks() == []
    assert internet.unexpected == []
