"""Destination Actions end to end: subscriptions, mappings, filters, on-load, logout, options, consent,
an existing agent, a custom global key and debug logs. Real Chromium, analytics.js 2.0 and Pendo agent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BuildScript, default_config
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

ShopFactory = Callable[[Path], Shop]


@pytest.fixture
def open_shop(build_script: BuildScript, shop_factory: ShopFactory) -> Callable[[str], Shop]:
    """A shop running the script built from the default [pendo] table plus the given TOML."""

    def _open(extra_toml: str) -> Shop:
        return shop_factory(build_script(default_config() + extra_toml))

    return _open


def merged(metadata: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for meta in metadata:
        result.update(meta.get(kind) or {})
    return result


SUBSCRIPTIONS = """
[[subscriptions]]
action = "track"
name = "Orders and reports, no internal users"
subscribe = 'type = "track" and (event = "Order Completed" or match(event, "Report*")) and context.traits.role != "internal"'
keys = { deny = ["card_number"] }
[subscriptions.mapping]
event = { "@template" = "Web: {{event}}" }
metadata = { "@path" = "$.properties" }

[[subscriptions]]
action = "track"
name = "Everything else, by allow list"
subscribe = 'type = "track"'
events = { allow = ["Signed Up"], deny = ["Order Completed"] }

[[subscriptions]]
action = "identify"
keys = { deny = ["email"] }
[subscriptions.mapping]
visitorId = { "@path" = "$.userId" }
visitorData = { full_name = { "@template" = "{{traits.first}} {{traits.last}}" }, email = { "@path" = "$.traits.email" }, plan = { "@path" = "$.traits.plan" } }

[[subscriptions]]
action = "group"
[subscriptions.mapping]
accountId = { "@path" = "$.traits.account_number" }
accountData = { "@path" = "$.traits" }
"""


def test_subscriptions_choose_events_and_mappings_shape_what_pendo_gets(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop(SUBSCRIPTIONS)
    shop.open(
        page_code="""
        analytics.identify('u-1', {first: 'Ada', last: 'Lovelace', email: 'ada@example.com', plan: 'pro'});
        analytics.group('segment-group-id', {account_number: 'ACC-77', seats: 3});
        analytics.track('Order Completed', {total: 10, card_number: '4111'});
        analytics.track('Report Exported', {format: 'csv'});
        analytics.track('Signed Up', {via: 'form'});
        analytics.track('Settings Opened', {});
        """
    )
    shop.wait_until(
        lambda: (
            len(shop.internet.tracks()) >= 3
            and merged(shop.internet.metadata(), "account").get("seats") == 3
            and "full_name" in merged(shop.internet.metadata(), "visitor")
        )
    )
    shop.page.wait_for_timeout(400)
    shop.run("() => pendo.flushNow(true)")

    assert [(name, props) for name, props, _ in shop.internet.tracks()] == [
        ("Web: Order Completed", {"total": 10}),
        ("Web: Report Exported", {"format": "csv"}),
        ("Signed Up", {"via": "form"}),
    ]
    visitor = merged(shop.internet.metadata(), "visitor")
    assert visitor["full_name"] == "Ada Lovelace"
    assert visitor["plan"] == "pro"
    assert "email" not in visitor
    assert merged(shop.internet.metadata(), "account") == {"id": "ACC-77", "account_number": "ACC-77", "seats": 3}


def test_a_subscription_filter_on_traits_keeps_internal_users_out(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop(SUBSCRIPTIONS)
    shop.open(
        page_code="analytics.track('Order Completed', {total: 1}, {traits: {role: 'internal'}});"
        "analytics.track('Signed Up', {});"
    )
    shop.wait_until(lambda: len(shop.internet.tracks()) == 1)
    shop.page.wait_for_timeout(300)
    assert [name for name, _, _ in shop.internet.tracks()] == ["Signed Up"]


def test_group_sends_parent_account_once_as_a_parent(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop("")
    shop.open(
        page_code="analytics.identify('u-2'); analytics.group('child-1', {name: 'Child', "
        "parentAccount: {id: 'parent-9', name: 'Parent'}});"
    )
    shop.wait_until(
        lambda: shop.account() == "parent-9::child-1" and "name" in merged(shop.internet.metadata(), "account")
    )
    account = merged(shop.internet.metadata(), "account")
    assert account["name"] == "Child"
    assert "parentAccount" not in account


def test_a_parent_deeper_inside_the_account_data_is_sent_once_too(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop(
        '[[subscriptions]]\naction = "group"\n[subscriptions.mapping]\n'
        'accountId = { "@path" = "$.groupId" }\naccountData = { "@path" = "$.traits" }\n'
        'parentAccountData = { "@path" = "$.traits.company.parent" }\n'
    )
    shop.open(
        page_code="analytics.identify('u-3'); analytics.group('child-2', {name: 'Child', "
        "company: {name: 'Co', parent: {id: 'parent-7', name: 'Holding'}}});"
    )
    shop.wait_until(
        lambda: shop.account() == "parent-7::child-2" and "name" in merged(shop.internet.metadata(), "account")
    )
    account = merged(shop.internet.metadata(), "account")
    assert account["company"] == {"name": "Co"}
    assert shop.run("() => analytics.group().traits().company.parent.id") == "parent-7", "the page's data is untouched"


@pytest.mark.parametrize(
    ("on_load", "expected_visitor"),
    [
        ('visitor_id = "user_id"', "remembered-user"),
        ('visitor_id = "anonymous"', "anonymous"),
        ('visitor_id = "none"', "pendo's own"),
        ('visitor_id = "user_id_or_anonymous"\nuser_traits = false\ngroup = false', "remembered-user"),
    ],
)
def test_on_load_settings_choose_the_initial_visitor_and_account(
    open_shop: Callable[[str], Shop], on_load: str, expected_visitor: str
) -> None:
    shop = open_shop(f"[on_load]\n{on_load}\n")
    shop.open(
        with_script=False,
        page_code="analytics.identify('remembered-user', {plan: 'gold'});"
        "analytics.group('remembered-group', {tier: 1});",
    )
    shop.wait_for_segment()
    shop.page.wait_for_function("() => analytics.group().id() === 'remembered-group'")
    anonymous_id = shop.run("() => analytics.user().anonymousId()")
    shop.open(path="/next")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.pendo_events("load") != [] and shop.internet.metadata() != [])

    first_load = shop.internet.pendo_events("load")[0]
    if expected_visitor == "anonymous":
        assert first_load["visitor_id"] == f"_PENDO_T_{anonymous_id}"
    elif expected_visitor == "pendo's own":
        assert first_load["visitor_id"].startswith("_PENDO_T_") and anonymous_id not in first_load["visitor_id"]
    else:
        assert first_load["visitor_id"] == expected_visitor
    visitor = merged(shop.internet.metadata(), "visitor")
    if "user_traits = false" in on_load:
        assert "plan" not in visitor
        assert first_load["account_id"] in (None, "")
    elif expected_visitor == "remembered-user":
        assert visitor["plan"] == "gold"
        assert first_load["account_id"] == "remembered-group"


def test_identify_can_carry_the_remembered_group_traits(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop('[[subscriptions]]\naction = "identify"\naccount_traits = true\n')
    shop.open(page_code="analytics.group('g-5', {tier: 'enterprise'});")
    shop.wait_for_pendo()
    shop.run("() => analytics.identify('u-5', {name: 'Eve'})")
    shop.wait_until(lambda: shop.visitor() == "u-5" and merged(shop.internet.metadata(), "account").get("tier"))
    assert merged(shop.internet.metadata(), "account") == {"id": "g-5", "tier": "enterprise"}


def test_reset_clears_the_pendo_session(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop("")
    shop.open(page_code="analytics.identify('shared-computer-user', {name: 'First'});")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.visitor() == "shared-computer-user")
    shop.run("() => analytics.reset()")
    shop.page.wait_for_function("() => pendo.getVisitorId() !== 'shared-computer-user'")
    new_anonymous = shop.run("() => analytics.user().anonymousId()")
    shop.wait_until(lambda: shop.visitor() == f"_PENDO_T_{new_anonymous}")
    shop.run("() => analytics.track('After Logout', {})")
    shop.wait_until(lambda: any(name == "After Logout" for name, _, _ in shop.internet.tracks()))
    after = [visitor for name, _, visitor in shop.internet.tracks() if name == "After Logout"]
    assert after == [f"_PENDO_T_{new_anonymous}"]


def test_reset_can_leave_pendo_alone(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop("[logout]\nclear_session = false\n")
    shop.open(page_code="analytics.identify('kept-user');")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.visitor() == "kept-user")
    shop.run("() => analytics.reset()")
    shop.page.wait_for_timeout(500)
    assert shop.visitor() == "kept-user"


AGENT_OPTIONS = """
[pendo.options]
excludeAllText = true
disableCookies = true
cookieDomain = ".shop.example"
[pendo.options.guides]
disabled = true
[pendo.options.extra]
someFutureOption = { nested = [1, 2] }
"""


def test_agent_options_are_passed_to_pendo_initialize(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop(AGENT_OPTIONS)
    shop.internet.agent_behaviour = "hang"
    shop.open(page_code="analytics.identify('opt-user', {plan: 'x'});", wait_until="domcontentloaded")
    shop.wait_for_segment()
    shop.page.wait_for_function("() => pendo._q.some((call) => call[0] === 'initialize')")
    initialize = shop.run("() => pendo._q.find((call) => call[0] === 'initialize')[1]")
    assert {key: value for key, value in initialize.items() if key not in ("visitor", "account")} == {
        "excludeAllText": True,
        "disableCookies": True,
        "cookieDomain": ".shop.example",
        "guides": {"disabled": True},
        "someFutureOption": {"nested": [1, 2]},
    }


def test_the_real_agent_applies_the_options(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop(AGENT_OPTIONS)
    shop.open(page_code="analytics.identify('opt-user');")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.visitor() == "opt-user")
    assert shop.run("() => pendo.areGuidesDisabled()") is True
    assert "_pendo_" not in shop.run("() => document.cookie")
    assert not [request for request in shop.internet.pendo_requests if request.endpoint.startswith("guide")]


CONSENT = """
[consent]
categories = ["analytics"]
"""


def stamp_consent(global_key: str = "analytics", *, analytics_granted: bool = False) -> str:
    """Page code standing in for Segment's consent tools, which stamp each event in a source middleware."""
    granted = "true" if analytics_granted else "false"
    return f"""
    window.consentPreferences = {{analytics: {granted}, advertising: true}};
    {global_key}.addSourceMiddleware(function (m) {{
      m.payload.obj.context.consent = {{categoryPreferences: window.consentPreferences}};
      m.next(m.payload);
    }});
    """


def test_nothing_loads_or_is_sent_until_consent_and_nothing_after_it_is_revoked(
    open_shop: Callable[[str], Shop],
) -> None:
    shop = open_shop(CONSENT)
    shop.open(before_script=stamp_consent(), page_code="analytics.track('Before Consent', {});")
    shop.wait_for_segment()
    shop.page.wait_for_timeout(800)
    assert shop.internet.agent_requests == []
    assert shop.run("() => typeof window.pendo") == "undefined"

    shop.run("""() => { window.consentPreferences = {analytics: true};
        analytics.track('Segment Consent Preference Updated', {}); analytics.track('With Consent', {}); }""")
    shop.wait_for_pendo()
    shop.wait_until(lambda: any(name == "With Consent" for name, _, _ in shop.internet.tracks()))

    shop.run("""() => { window.consentPreferences = {analytics: false};
        analytics.track('Segment Consent Preference Updated', {}); analytics.track('After Revoke', {}); }""")
    shop.page.wait_for_timeout(500)
    shop.run("() => pendo.flushNow(true)")
    shop.page.wait_for_timeout(500)
    names = [name for name, _, _ in shop.internet.tracks()]
    assert "Before Consent" not in names
    assert "After Revoke" not in names
    assert shop.run("() => pendo.isSendingEvents()") is False
    assert len(shop.internet.agent_requests) == 1


def test_a_page_that_already_has_pendo_keeps_its_agent(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop("")
    api_key = "5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a"
    own_install = f"""<script>
    (function(){{var p=window.pendo=window.pendo||{{}};p._q=p._q||[];
    ['initialize','identify','updateOptions','pageLoad','track'].forEach(function(m){{
      p[m]=p[m]||function(){{p._q[m==='initialize'?'unshift':'push']([m].concat([].slice.call(arguments)));}};}});
    var s=document.createElement('script');s.async=true;
    s.src='https://cdn.pendo.io/agent/static/{api_key}/pendo.js';document.head.appendChild(s);}})();
    pendo.initialize({{visitor: {{id: 'site-own-visitor'}}, account: {{id: 'site-own-account'}}}});
    </script>"""
    shop.open(
        head_html=own_install,
        page_code="analytics.identify('segment-user', {role: 'dev'});analytics.track('Clicked Save', {});",
    )
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.visitor() == "segment-user" and len(shop.internet.tracks()) == 1)
    assert len(shop.internet.agent_requests) == 1
    assert shop.internet.tracks()[0][2] == "segment-user"
    assert shop.run("() => document.querySelectorAll('script[src*=\"/agent/static/\"]').length") == 1


def test_a_custom_global_key_is_followed(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop('[source]\nglobal_key = "segmentAnalytics"\n')
    shop.open(
        global_key="segmentAnalytics",
        page_code="segmentAnalytics.identify('custom-key-user');"
        "segmentAnalytics.track('Custom Key Event', {ok: true});",
    )
    shop.wait_for_segment("segmentAnalytics")
    shop.wait_until(lambda: shop.internet.tracks() != [])
    assert shop.internet.tracks() == [("Custom Key Event", {"ok": True}, "custom-key-user")]
    assert shop.run("() => typeof window.analytics") == "undefined"


def test_debug_build_logs_each_decision_and_plain_build_has_no_logging(
    open_shop: Callable[[str], Shop], build_script: BuildScript
) -> None:
    shop = open_shop("[build]\ndebug = true\n")
    messages: list[str] = []
    shop.page.on("console", lambda message: messages.append(message.text))
    shop.open(page_code="analytics.track('Debugged', {a: 1});")
    shop.wait_until(lambda: shop.internet.tracks() != [])
    log = shop.run("() => window.segmentPendoDebug.log.map((entry) => entry.kind)")
    assert {"event", "subscription", "pendo.track", "pendo.initialize"} <= set(log)
    subscription = shop.run(
        "() => window.segmentPendoDebug.log.find((entry) => entry.kind === 'subscription' && "
        "entry.detail.call && entry.detail.call[0] === 'track').detail"
    )
    assert subscription == {
        "name": "Send Track Event",
        "mapped": {"event": "Debugged", "metadata": {"a": 1}},
        "call": ["track", "Debugged", {"a": 1}],
    }
    assert any(message.startswith("[segment-pendo] pendo.track") for message in messages)
    assert "pendo will not show" not in log
    shop.run(
        "() => analytics.track('Oversized', {'cart.items': 2, '2fa': true, __meta__: 1, fine_name: 'x'.repeat(600)})"
    )
    shop.wait_until(lambda: len(shop.internet.tracks()) == 2)
    warnings = shop.run(
        "() => window.segmentPendoDebug.log.filter((entry) => entry.kind === 'pendo will not show')"
        ".map((entry) => entry.detail)"
    )
    assert warnings == [
        {
            "name": "Send Track Event",
            "warnings": [
                'property "cart.items" will not show in Pendo: use letters, digits and _ (at most 32, not starting '
                "with a digit)",
                'property "2fa" will not show in Pendo: use letters, digits and _ (at most 32, not starting with a '
                "digit)",
                'property "__meta__" will not show in Pendo: use letters, digits and _ (at most 32, not starting '
                "with a digit)",
                'properties are 655 bytes of JSON: Pendo shows more than 512 as "event properties JSON too large"',
            ],
        }
    ]
    plain = build_script(default_config()).read_text()
    assert "segment-pendo]" not in plain and "segmentPendoDebug" not in plain
    assert "JSON too large" not in plain


def test_page_subscription_reports_virtual_page_views(open_shop: Callable[[str], Shop]) -> None:
    shop = open_shop(
        '[[subscriptions]]\naction = "page"\nsubscribe = \'type = "page" and properties.virtual = true\'\n'
    )
    shop.open()
    shop.wait_for_pendo()
    shop.run("() => analytics.page('Checkout', {virtual: true, url: 'https://shop.example/checkout/step-2'})")
    shop.run("() => analytics.page('Ignored', {url: 'https://shop.example/not-virtual'})")
    shop.wait_until(lambda: any(e["url"].endswith("/checkout/step-2") for e in shop.internet.pendo_events("load")))
    shop.page.wait_for_timeout(300)
    assert not any(e["url"].endswith("/not-virtual") for e in shop.internet.pendo_events("load"))


def test_every_feature_config_runs_end_to_end(build_script: BuildScript, shop_factory: ShopFactory) -> None:
    every_feature = (Path(__file__).parent / "configs" / "every-feature.toml").read_text()
    shop = shop_factory(build_script(every_feature))
    shop.internet.cname_region = "eu"
    shop.open(
        global_key="segment",
        before_script=stamp_consent("segment", analytics_granted=True),
        page_code="""
        segment.group('acct-1', {name: 'Acme', plan: 'pro', secret: 'x'});
        segment.identify('user-1', {first: 'Ada', last: 'L', plan: 'pro', role: 'admin', email: 'a@b.c'});
        segment.track('Report Built', {rows: 3, card_number: '4111'});
        segment.track('Test Report', {});
        """,
    )
    shop.wait_for_pendo()
    shop.wait_until(
        lambda: (
            len(shop.internet.tracks()) == 1
            and "full_name" in merged(shop.internet.metadata(), "visitor")
            and "plan" in merged(shop.internet.metadata(), "account")
        )
    )
    assert shop.internet.agent_requests == [
        "https://pendo-static.example.com/agent/static/5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a/pendo.js"
    ]
    assert shop.internet.tracks() == [("Report Built", {"rows": 3}, "user-1")]
    visitor = merged(shop.internet.metadata(), "visitor")
    assert visitor["full_name"] == "Ada L" and "email" not in visitor
    assert merged(shop.internet.metadata(), "account")["plan"] == "pro"
