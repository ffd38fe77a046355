"""RudderStack's JavaScript SDK (v3, the real npm build) as the source instead of Segment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BuildScript, default_config
from tests.support.fake_internet import RUDDERSTACK_DATA_PLANE, RUDDERSTACK_SDK
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

# What the npm build of the SDK does on a page: construct, then load with a local source config
# (so nothing is fetched from RudderStack's control plane) and the data plane this test answers.
START_RUDDERSTACK = f"""
new rudderanalytics.RudderAnalytics();
rudderanalytics.load('rs_write_key', '{RUDDERSTACK_DATA_PLANE}', {{
  plugins: [],
  getSourceConfig: function () {{
    return {{source: {{id: 'source-1', name: 'Shop', writeKey: 'rs_write_key', workspaceId: 'ws-1', enabled: true,
      config: {{statsCollection: {{errors: {{enabled: false}}, metrics: {{enabled: false}}}}}}, destinations: []}}}};
  }}
}});
"""


@pytest.fixture
def rudder_shop(build_script: BuildScript, shop_factory: Callable[[Path], Shop]) -> Shop:
    shop = shop_factory(build_script(default_config() + '[source]\nclient = "rudderstack"\n'))
    sdk_url = shop.internet.serve_file("/js/rudderstack.js", RUDDERSTACK_SDK)
    shop.sdk_head = f'<script src="{sdk_url}"></script><script>{START_RUDDERSTACK}</script>'  # type: ignore[attr-defined]
    return shop


def test_rudderstack_calls_reach_pendo(rudder_shop: Shop) -> None:
    shop = rudder_shop
    shop.open(
        with_snippet=False,
        head_html=shop.sdk_head,  # type: ignore[attr-defined]
        page_code="""
        rudderanalytics.identify('rs-user', {name: 'Rudy', email: 'r@example.com'});
        rudderanalytics.group('rs-account', {plan: 'team'});
        rudderanalytics.track('Rudder Event', {n: 1});
        """,
    )
    shop.wait_for_pendo()

    def metadata_arrived() -> bool:
        kinds = [
            set(meta.get("visitor") or {}) | {f"account.{key}" for key in meta.get("account") or {}}
            for meta in shop.internet.metadata()
        ]
        return any("name" in kind for kind in kinds) and any("account.plan" in kind for kind in kinds)

    shop.wait_until(lambda: shop.internet.tracks() != [] and metadata_arrived())
    assert shop.internet.tracks() == [("Rudder Event", {"n": 1}, "rs-user")]
    visitor: dict[str, object] = {}
    account: dict[str, object] = {}
    for meta in shop.internet.metadata():
        visitor.update(meta.get("visitor") or {})
        account.update(meta.get("account") or {})
    assert visitor["name"] == "Rudy"
    assert account == {"id": "rs-account", "plan": "team"}
    assert shop.run("() => rudderanalytics.getUserId()") == "rs-user"
    shop.wait_until(lambda: shop.internet.rudderstack_events != [])


def test_rudderstack_remembered_user_starts_pendo_and_reset_clears_it(rudder_shop: Shop) -> None:
    shop = rudder_shop
    shop.open(
        with_snippet=False,
        with_script=False,
        head_html=shop.sdk_head,  # type: ignore[attr-defined]
        page_code="rudderanalytics.ready(function () { rudderanalytics.identify('remembered-rs', {tier: 2}); });",
    )
    shop.page.wait_for_function("() => rudderanalytics.getUserId && rudderanalytics.getUserId() === 'remembered-rs'")
    shop.open(path="/again", with_snippet=False, head_html=shop.sdk_head)  # type: ignore[attr-defined]
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.pendo_events("load") != [])
    assert shop.internet.pendo_events("load")[0]["visitor_id"] == "remembered-rs"
    shop.run("() => rudderanalytics.reset()")
    shop.page.wait_for_function("() => pendo.getVisitorId() !== 'remembered-rs'")
    anonymous = shop.run("() => rudderanalytics.getAnonymousId()")
    shop.wait_until(lambda: shop.visitor() == f"_PENDO_T_{anonymous}")


# The CDN snippet's queue: calls wait in window.rudderanalytics (an array) until the SDK loads
# and replays them. The npm UMD build replaces that global with its exports when it runs, so the
# queue is handed back to the SDK's constructor, which replays it as the CDN build does.
RUDDERSTACK_QUEUE = """
window.rudderanalytics = [];
['load', 'ready', 'page', 'track', 'identify', 'alias', 'group', 'reset', 'setAnonymousId'].forEach(function (m) {
  window.rudderanalytics[m] = function () {
    window.rudderanalytics.push([m].concat(Array.prototype.slice.call(arguments)));
  };
});
"""


def test_calls_queued_before_the_rudderstack_sdk_loads_reach_pendo(rudder_shop: Shop) -> None:
    shop = rudder_shop
    sdk_url = shop.internet.serve_file("/js/rudderstack.js", RUDDERSTACK_SDK)
    load_call = START_RUDDERSTACK.replace("new rudderanalytics.RudderAnalytics();", "")
    shop.open(
        with_snippet=False,
        head_html=f"<script>{RUDDERSTACK_QUEUE}{load_call}</script>",
        page_code=f"""
        rudderanalytics.identify('queued-rs-user', {{plan: 'queued'}});
        rudderanalytics.track('Queued Rudder Event', {{q: true}});
        window.queuedRudderCalls = window.rudderanalytics;
        var sdk = document.createElement('script');
        sdk.src = '{sdk_url}';
        sdk.onload = function () {{
          var exported = window.rudderanalytics;
          window.rudderanalytics = window.queuedRudderCalls;
          new exported.RudderAnalytics();
        }};
        document.head.appendChild(sdk);
        """,
    )
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.visitor() == "queued-rs-user" and shop.internet.tracks())
    assert shop.internet.tracks() == [("Queued Rudder Event", {"q": True}, "queued-rs-user")]
    shop.wait_until(lambda: any(event.get("batch") or event.get("event") for event in shop.internet.rudderstack_events))
