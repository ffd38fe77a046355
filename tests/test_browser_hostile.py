"""Hostile pages and data: the script never throws into the page, never breaks analytics.js, and
survives Pendo or analytics.js being blocked, slow or missing. Real Chromium, analytics.js, agent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import DEFAULT_API_KEY, BuildScript, default_config
from tests.support.compiled_js import static_exports_script
from tests.support.shop import Shop

pytestmark = pytest.mark.browser
ShopFactory = Callable[[Path], Shop]

# Each is one page-code statement; the README's safety figures count this list.
HOSTILE_CALLS = [
    'analytics.identify(\'hostile-user\', JSON.parse(\'{"__proto__": {"polluted": "yes"}, "ok": 1}\'))',
    "analytics.identify('hostile-user', {constructor: {prototype: {polluted: 'yes'}}, prototype: {polluted: 'yes'}})",
    'analytics.group(\'hostile-group\', JSON.parse(\'{"__proto__": {"polluted": "yes"}, "plan": "x"}\'))',
    'analytics.track(\'Proto Props\', JSON.parse(\'{"__proto__": {"polluted": "yes"}, "constructor": 1}\'))',
    "(function () { var loop = {name: 'loop'}; loop.self = loop; analytics.track('Cyclic', {loop: loop}); })()",
    "(function () { var loop = {n: 1}; loop.again = [loop]; analytics.identify('hostile-user', {loop: loop}); })()",
    "analytics.track('Huge', {big: 'x'.repeat(1024 * 1024)})",
    "analytics.track('x'.repeat(1024 * 1024), {})",
    "analytics.identify(12345, {numeric: true})",
    "analytics.identify(null, {orphan: true})",
    "analytics.identify(undefined, undefined)",
    "analytics.group(undefined, {nobody: true})",
    "analytics.group({not: 'an id'}, {odd: true})",
    "analytics.track('', {empty: true})",
    "analytics.track(42, {})",
    "analytics.track({not: 'a string'}, {})",
    "analytics.track(null)",
    "analytics.track('String Props', 'not an object')",
    "analytics.track('Array Props', [1, 2, 3])",
    "analytics.track('Odd Values', {fn: function () {}, nan: NaN, inf: -Infinity, date: new Date(0), deep: "
    "{a: {b: {c: {d: {e: {f: {g: {h: 1}}}}}}}}})",
    "analytics.track('Throwing Getter', Object.defineProperty({}, 'boom', {enumerable: true, get: function () "
    "{ throw new Error('getter'); }}))",
    "analytics.identify('hostile-user', {id: 'not-the-id', wide: Object.fromEntries(Array.from({length: 2000}, "
    "function (_, i) { return ['k' + i, i]; }))})",
]


def test_hostile_event_data_never_reaches_the_page_or_pollutes_it(
    build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(build_script())
    # analytics.js itself rejects some of these calls ("Event missing"); the script must add no error of its own.
    shop.open(with_script=False)
    shop.wait_for_segment()
    for call in HOSTILE_CALLS:
        shop.run(f"() => {{ {call}; }}")
    shop.page.wait_for_timeout(500)
    errors_without_script = sorted(shop.page_errors)
    shop.page_errors.clear()

    shop.open(path="/with-script")
    shop.wait_for_segment()
    shop.wait_for_pendo()
    for call in HOSTILE_CALLS:
        shop.run(f"() => {{ {call}; }}")
    shop.run("() => analytics.track('After Hostility', {fine: true})")
    shop.wait_until(lambda: any(name == "After Hostility" for name, _, _ in shop.internet.tracks()))
    shop.page.wait_for_timeout(500)
    shop.run("() => pendo.flushNow(true)")
    shop.page.wait_for_timeout(300)

    assert shop.run("() => [({}).polluted, Object.prototype.polluted, Function.prototype.polluted]") == [None] * 3
    assert any(event.get("event") == "After Hostility" for event in _segment_events(shop))
    for name, properties, _ in shop.internet.tracks():
        assert isinstance(name, str) and 0 < len(name) <= 10_000
        assert all(not isinstance(value, str) or len(value) <= 10_000 for value in properties.values())
    names = [name for name, _, _ in shop.internet.tracks()]
    assert {"Proto Props", "Cyclic", "Huge", "String Props", "Odd Values", "After Hostility"} <= set(names)
    odd = next(props for name, props, _ in shop.internet.tracks() if name == "Odd Values")
    # Six levels deep at most, counting the properties object itself.
    assert odd == {"date": "1970-01-01T00:00:00.000Z", "deep": {"a": {"b": {"c": {"d": {}}}}}}
    assert next(props for name, props, _ in shop.internet.tracks() if name == "Cyclic") == {"loop": {"name": "loop"}}
    assert next(props for name, props, _ in shop.internet.tracks() if name == "Huge")["big"] == "x" * 10_000
    assert shop.visitor() == "hostile-user"
    assert sorted(shop.page_errors) == errors_without_script
    shop.page_errors.clear()


def _segment_events(shop: Shop) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for body in shop.internet.segment_events:
        events.extend(body.get("batch", [body]))
    return events


@pytest.mark.parametrize("behaviour", ["404", "hang", "abort"])
def test_the_page_and_analytics_carry_on_when_pendo_is_unavailable(
    behaviour: str, build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(build_script())
    shop.internet.agent_behaviour = behaviour
    shop.open(page_code="window.pageCodeRan = true;")
    shop.wait_for_segment()
    shop.run("() => { for (let i = 0; i < 600; i += 1) { analytics.track('Queued ' + i, {i: i}); } }")
    shop.run("() => analytics.identify('still-here', {})")
    shop.run("() => analytics.track('Still Delivering', {})")
    shop.page.wait_for_function(
        "() => window.pendo && pendo._q && pendo._q.some((call) => call[1] === 'Still Delivering')"
    )
    shop.wait_until(lambda: any(e.get("event") == "Still Delivering" for e in _segment_events(shop)), timeout_ms=20_000)
    assert shop.run("() => window.pageCodeRan") is True
    queued = shop.run("() => pendo._q.length")
    assert queued <= 500
    assert shop.run("() => pendo._q[0][0]") == "initialize"
    assert len(shop.internet.agent_requests) == 1
    assert shop.internet.pendo_requests == []


def test_a_hanging_agent_does_not_hold_up_the_page_load_event(
    build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(build_script())
    shop.internet.agent_behaviour = "hang"
    shop.open(page_code="window.addEventListener('load', function () { window.pageLoaded = true; });")
    assert shop.run("() => window.pageLoaded") is True
    shop.page.wait_for_function("() => document.querySelector('script[src*=\"/agent/static/\"]') !== null")
    assert len(shop.internet.agent_requests) == 1


def test_the_script_included_twice_loads_one_agent_and_initializes_once(
    build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    script = build_script(default_config() + "[build]\ndebug = true\n")
    shop = shop_factory(script)
    second = shop.internet.serve_file("/js/again.js", script)
    shop.open(
        page_code=f"document.write('<script src=\"{second}\"><\\/script>');"
        "analytics.identify('twice-user'); analytics.track('Once', {});"
    )
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.tracks() != [])
    shop.page.wait_for_timeout(300)
    assert len(shop.internet.agent_requests) == 1
    log = shop.run("() => window.segmentPendoDebug.log.map((entry) => entry.kind)")
    assert log.count("pendo.initialize") == 1
    assert [name for name, _, _ in shop.internet.tracks()] == ["Once"]


def test_the_script_included_before_the_snippet_still_connects(
    build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(build_script())
    shop.open(script_before_snippet=True, page_code="analytics.identify('early-user'); analytics.track('Early', {});")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.tracks() != [])
    assert shop.internet.tracks() == [("Early", {}, "early-user")]
    assert len(shop.internet.agent_requests) == 1
    assert shop.run("() => pendo._q ? pendo._q.length : 0") == 0


def test_nothing_harmful_happens_when_analytics_js_never_loads(
    build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(build_script())
    shop.internet.segment_behaviour = "abort"
    shop.open(page_code="analytics.identify('blocked'); analytics.track('Blocked', {}); window.pageCodeRan = true;")
    shop.page.wait_for_timeout(3000)
    assert shop.run("() => window.pageCodeRan") is True
    assert shop.internet.pendo_requests == []
    assert shop.run("() => Array.isArray(window.analytics)") is True
    assert shop.internet.segment_events == []


CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', function (event) {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI + ' ' + event.sourceFile);
});
"""
STRICT_POLICY = (
    "default-src 'self'; script-src 'self' https://cdn.segment.com https://cdn.pendo.io; "
    "connect-src 'self' https://cdn.segment.com https://api.segment.io https://app.pendo.io; "
    "img-src 'self' data: https://app.pendo.io; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'"
)
NONCE = "r4nd0mN0nce8"
NONCE_POLICY = STRICT_POLICY.replace(
    "script-src 'self' https://cdn.segment.com https://cdn.pendo.io",
    f"script-src 'nonce-{NONCE}' https://cdn.segment.com",
)


def test_a_strict_csp_without_inline_or_eval_is_enough(build_script: BuildScript, shop_factory: ShopFactory) -> None:
    shop = shop_factory(build_script())
    shop.page.add_init_script(CSP_VIOLATIONS)
    shop.open(
        headers={"Content-Security-Policy": STRICT_POLICY},
        inline_code=False,
        page_code="analytics.identify('csp-user'); analytics.track('Under CSP', {});",
    )
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.tracks() != [])
    assert shop.internet.tracks() == [("Under CSP", {}, "csp-user")]
    assert shop.run("() => window.cspViolations") == []


def open_under_nonce_policy(shop: Shop, page_code: str) -> Shop:
    """A page whose CSP admits scripts by nonce only; its own script tags carry the nonce."""
    shop.page.add_init_script(CSP_VIOLATIONS)
    nonce_attribute = f'nonce="{NONCE}"'
    shop.open(
        headers={"Content-Security-Policy": NONCE_POLICY},
        inline_code=False,
        script_attributes=nonce_attribute,
        snippet_attributes=nonce_attribute,
        page_code=page_code,
    )
    return shop


@pytest.mark.parametrize("nonce_setting", ['"from_script"', f'"{NONCE}"'])
def test_the_injected_agent_carries_the_nonce(
    nonce_setting: str, build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    config = default_config().rstrip("\n") + f"\nnonce = {nonce_setting}\n"
    shop = open_under_nonce_policy(
        shop_factory(build_script(config)), "analytics.identify('nonce-user'); analytics.track('Nonce', {});"
    )
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.tracks() != [])
    assert shop.run("() => document.querySelector('script[src*=\"/agent/static/\"]').nonce") == NONCE
    assert shop.run("() => window.cspViolations") == []


def test_without_the_nonce_the_agent_is_blocked_and_nothing_breaks(
    build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = open_under_nonce_policy(
        shop_factory(build_script()), "analytics.track('No Nonce', {}); window.pageCodeRan = true;"
    )
    shop.wait_for_segment()
    shop.page.wait_for_function("() => window.cspViolations.length > 0")
    violations = shop.run("() => window.cspViolations")
    assert all(f"/agent/static/{DEFAULT_API_KEY}/pendo.js" in violation for violation in violations)
    assert shop.run("() => window.pageCodeRan") is True
    assert shop.internet.agent_requests == []


def test_removing_the_parent_from_account_data_never_reaches_a_shared_prototype(page: Page) -> None:
    # analytics.js 2.0 drops own "__proto__" keys before our plugin, but other Segment-spec clients and
    # server payloads (JSON.parse) keep them, and a mapping path may run through one.
    page.set_content("<!doctype html><title>group</title>")
    page.add_script_tag(content=static_exports_script("pendo-actions.js", ["groupCall"]))
    call = page.evaluate(
        """() => {
          const mapped = JSON.parse('{"accountId": "child", "parentAccountData": {"id": "parent"},' +
            '"accountData": {"name": "Child", "__proto__": {"valueOf": {"id": "parent"}}}}');
          let call = null;
          const send = (...args) => { call = args; };
          const nothingStored = {userId_: () => undefined, anonymousId_: () => undefined};
          groupCall(send, nothingStored, {}, mapped.visitorId, mapped.accountId, mapped.accountData,
            mapped.parentAccountData, ['__proto__', 'valueOf'], null, []);
          return {call: call, valueOf: typeof Object.prototype.valueOf};
        }"""
    )
    assert call == {
        "call": ["identify", {"account": {"name": "Child", "id": "child"}, "parentAccount": {"id": "parent"}}],
        "valueOf": "function",
    }
