"""The default Segment → Pendo mapping, end to end: real Chromium, analytics.js 2.0 and Pendo agent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from generator.bundle import find_esbuild
from generator.paths import NODE_MODULES
from tests.conftest import DEFAULT_API_KEY, BuildScript, default_config
from tests.support.fake_internet import FakeInternet
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

ShopFactory = Callable[[Path], Shop]


@pytest.fixture(params=["esbuild", "esbuild-py"])
def shop(request: pytest.FixtureRequest, build_script: BuildScript, shop_factory: ShopFactory) -> Shop:
    """A shop running the default config's script, built by each bundler."""
    return shop_factory(build_script(bundler=request.param))


def latest_visitor_metadata(internet: FakeInternet) -> dict[str, Any]:
    """The visitor's metadata as Pendo holds it: every metadata event's fields, later ones winning."""
    merged: dict[str, Any] = {}
    for meta in internet.metadata():
        merged.update(meta.get("visitor") or {})
    return merged


def latest_account_metadata_or_none(internet: FakeInternet) -> dict[str, Any] | None:
    accounts = [meta["account"] for meta in internet.metadata() if meta.get("account")]
    return accounts[-1] if accounts else None


def latest_account_metadata(internet: FakeInternet) -> dict[str, Any]:
    accounts: list[dict[str, Any]] = [meta["account"] for meta in internet.metadata() if meta.get("account")]
    return accounts[-1]


def test_calls_queued_before_analytics_loads_reach_pendo_once_in_order(shop: Shop) -> None:
    shop.open(
        page_code="""
        analytics.identify('user-1', {name: 'Ada', email: 'ada@example.com', id: 'not-the-id'});
        analytics.group('acct-9', {plan: 'pro', id: 'not-the-id'});
        analytics.track('Order Completed', {total: 42});
        analytics.track('Coupon Applied', {code: 'X1'});
        """
    )
    shop.wait_until(
        lambda: (
            len(shop.internet.tracks()) >= 2
            and "name" in latest_visitor_metadata(shop.internet)
            and shop.account() == "acct-9"
            and latest_account_metadata_or_none(shop.internet) == {"id": "acct-9", "plan": "pro"}
        )
    )
    shop.page.wait_for_timeout(500)
    shop.run("() => pendo.flushNow(true)")

    assert shop.internet.tracks() == [
        ("Order Completed", {"total": 42}, "user-1"),
        ("Coupon Applied", {"code": "X1"}, "user-1"),
    ]
    visitor = latest_visitor_metadata(shop.internet)
    assert {key: visitor[key] for key in ("id", "name", "email")} == {
        "id": "user-1",
        "name": "Ada",
        "email": "ada@example.com",
    }
    assert shop.visitor() == "user-1"
    assert shop.account() == "acct-9"
    assert latest_account_metadata(shop.internet) == {"id": "acct-9", "plan": "pro"}
    assert shop.internet.agent_requests == [f"https://cdn.pendo.io/agent/static/{DEFAULT_API_KEY}/pendo.js"]
    assert [e["type"] for e in shop.internet.segment_events].count("track") == 2


def test_works_when_analytics_is_already_loaded(shop: Shop) -> None:
    shop.open(with_script=False)
    shop.wait_for_segment()
    shop.page.add_script_tag(url=shop.internet.serve_file("/late.js", shop.script))
    shop.run("() => analytics.identify('late-user', {role: 'admin'})")
    shop.run("() => analytics.track('Report Viewed', {report: 'weekly'})")
    shop.wait_until(lambda: len(shop.internet.tracks()) == 1 and "role" in latest_visitor_metadata(shop.internet))

    assert shop.internet.tracks() == [("Report Viewed", {"report": "weekly"}, "late-user")]
    assert latest_visitor_metadata(shop.internet)["role"] == "admin"
    assert len(shop.internet.agent_requests) == 1


def test_page_load_initializes_pendo_with_the_user_and_group_segment_remembers(shop: Shop) -> None:
    shop.open(
        with_script=False,
        page_code="analytics.identify('user-7', {plan_tier: 'gold'});analytics.group('acct-3', {seats: 12});",
    )
    shop.wait_for_segment()
    shop.page.wait_for_function("() => analytics.group().id() === 'acct-3'")

    shop.open(path="/second")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.metadata() != [])

    first_identify = shop.internet.pendo_events("identify")[0]
    assert (first_identify["visitor_id"], first_identify["account_id"]) == ("user-7", "acct-3")
    first_meta = shop.internet.metadata()[0]
    assert first_meta["visitor"]["plan_tier"] == "gold"
    assert first_meta["account"] == {"id": "acct-3", "seats": 12}


def test_anonymous_visitor_gets_pendo_anonymous_id_and_keeps_it_through_group(shop: Shop) -> None:
    shop.open(page_code="analytics.group('acct-5', {name: 'Initech'});")
    shop.wait_for_pendo()
    anonymous_id = shop.run("() => analytics.user().anonymousId()")
    shop.wait_until(lambda: shop.account() == "acct-5")

    assert shop.visitor() == f"_PENDO_T_{anonymous_id}"
    visitor_ids = {event["visitor_id"] for event in shop.internet.pendo_events()}
    assert visitor_ids == {f"_PENDO_T_{anonymous_id}"}
    assert latest_account_metadata(shop.internet) == {"id": "acct-5", "name": "Initech"}


def test_identify_after_group_carries_the_account_id(shop: Shop) -> None:
    shop.open(page_code="analytics.group('acct-8', {tier: 2}); analytics.identify('user-8', {name: 'Bo'});")
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.visitor() == "user-8" and shop.account() == "acct-8")

    def identifies() -> list[tuple[str, str]]:
        return [(e["visitor_id"], e["account_id"]) for e in shop.internet.pendo_events("identify")]

    # The agent sends its identify event in a later batch than its state changes (slow under load).
    shop.wait_until(lambda: ("user-8", "acct-8") in identifies())
    assert ("user-8", "acct-8") in identifies()


@pytest.mark.parametrize(
    ("pendo_keys", "agent_host"),
    [
        ({"region": "eu"}, "cdn.eu.pendo.io"),
        ({"region": "jp"}, "cdn.jpn.pendo.io"),
        ({"region": "gov", "content_host": "https://pendo-static.shop.example/"}, "pendo-static.shop.example"),
    ],
)
def test_agent_comes_from_the_region_cdn_or_the_cname_host(
    build_script: BuildScript, shop_factory: ShopFactory, pendo_keys: dict[str, str], agent_host: str
) -> None:
    shop = shop_factory(build_script(default_config(**pendo_keys)))
    shop.internet.cname_region = pendo_keys["region"]
    shop.open(page_code="analytics.track('Signed Up', {via: 'form'});")
    shop.wait_for_pendo()
    shop.wait_until(lambda: len(shop.internet.tracks()) == 1)

    assert shop.internet.agent_requests == [f"https://{agent_host}/agent/static/{DEFAULT_API_KEY}/pendo.js"]
    assert shop.internet.tracks()[0][:2] == ("Signed Up", {"via": "form"})


def test_the_script_adds_no_global_but_pendo(build_script: BuildScript, shop_factory: ShopFactory) -> None:
    shop = shop_factory(build_script())
    shop.internet.agent_behaviour = "hang"
    shop.open(with_script=False, wait_until="domcontentloaded")
    shop.wait_for_segment()
    before = set(shop.run("() => Object.keys(window)"))
    shop.page.add_script_tag(url=shop.internet.serve_file("/late.js", shop.script))
    shop.page.wait_for_timeout(300)
    after = set(shop.run("() => Object.keys(window)"))
    assert after - before == {"pendo"}


NPM_APP = """
import { AnalyticsBrowser } from '@segment/analytics-next';
window.analytics = AnalyticsBrowser.load({ writeKey: 'wk_test_1234' });
window.analytics.identify('npm-user', { plan: 'npm' });
window.analytics.track('From The npm Package', { ok: true });
"""


@pytest.fixture(scope="session")
def npm_app_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site's own bundle that uses @segment/analytics-next from npm, built with the pinned esbuild."""
    work = tmp_path_factory.mktemp("npm-app")
    (work / "app.js").write_text(NPM_APP)
    binary = find_esbuild()
    assert binary is not None
    subprocess.run(
        [
            str(binary),
            "app.js",
            "--bundle",
            "--format=iife",
            "--target=es2017",
            "--outfile=bundle.js",
            "--log-level=error",
        ],
        cwd=work,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        check=True,
    )
    return work / "bundle.js"


@pytest.mark.parametrize("script_first", [False, True])
def test_works_with_analytics_next_from_npm(
    script_first: bool, npm_app_bundle: Path, build_script: BuildScript, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(build_script())
    app_url = shop.internet.serve_file("/js/app.js", npm_app_bundle)
    if script_first:
        add_app = f"var app = document.createElement('script'); app.src = '{app_url}'; document.head.appendChild(app);"
        shop.open(with_snippet=False, page_code=add_app)
    else:
        shop.open(with_snippet=False, head_html=f'<script src="{app_url}"></script>')
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.internet.tracks() != [] and "plan" in latest_visitor_metadata(shop.internet))
    assert shop.internet.tracks() == [("From The npm Package", {"ok": True}, "npm-user")]
    assert latest_visitor_metadata(shop.internet)["plan"] == "npm"
