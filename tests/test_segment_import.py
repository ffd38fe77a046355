"""import-segment: Segment's stored settings in, an equivalent config out (or nothing and a clear error)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from generator.cli import main
from generator.config_loader import load_config
from generator.fql import evaluate_fql, parse_fql
from generator.mapping import MISSING, evaluate_mapping
from tests.conftest import BuildScript
from tests.support.segment_engine import run_segment_engine
from tests.support.shop import Shop

SETTINGS = Path(__file__).parent / "segment_settings"
PRESETS = [
    {
        "partnerAction": "track",
        "name": "Send Track Event",
        "enabled": True,
        "subscribe": 'type = "track"',
        "mapping": {"event": {"@path": "$.event"}, "metadata": {"@path": "$.properties"}},
    },
]


def write_settings(tmp_path: Path, settings: dict[str, Any]) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return path


def test_import_writes_a_config_that_keeps_every_setting_and_subscription(tmp_path: Path) -> None:
    out = tmp_path / "pendo.toml"
    assert main(["import-segment", str(SETTINGS / "eu-filtered.json"), "--out", str(out)]) == 0
    config = load_config(out)
    assert (config.pendo.region, config.pendo.content_host) == ("eu", None)
    assert (config.on_load.user_traits, config.on_load.group) == (False, True)
    assert config.logout.clear_session is False
    assert [(s.action, s.label, s.enabled, s.fql) for s in config.subscriptions] == [
        ("track", "Checkout events", True, 'type = "track" and match(event, "Checkout*")'),
        ("identify", "Send Identify Event", True, 'type = "identify"'),
        ("group", "Send Group Event", True, 'type = "group"'),
        ("track", "Disabled one", False, 'type = "track"'),
    ]
    assert config.subscriptions[0].mapping == {
        "event": {"@path": "$.event"},
        "metadata": {"@path": "$.properties.cart"},
    }
    assert config.subscriptions[3].mapping == {"event": {"@template": "All: {{event}}"}, "metadata": {}}


def test_settings_as_the_cdn_serves_them_are_accepted(tmp_path: Path) -> None:
    settings = {"apiKey": "abc-123", "region": "https://cdn.pendo.io", "subscriptions": json.dumps(PRESETS)}
    out = tmp_path / "pendo.toml"
    assert main(["import-segment", str(write_settings(tmp_path, {"settings": settings})), "--out", str(out)]) == 0
    assert load_config(out).subscriptions[0].label == "Send Track Event"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {
                "apiKey": "k-1",
                "subscriptions": [{**PRESETS[0], "mapping": {"event": {"@case": {"operator": "lower"}}}}],
            },
            "subscriptions[0] 'Send Track Event': mapping: event: unknown mapping directive '@case'; "
            "supported: @path, @if, @template, @literal",
        ),
        (
            {"apiKey": "k-1", "subscriptions": [{**PRESETS[0], "name": "Odd", "subscribe": "event = 'x'"}]},
            "subscriptions[0] 'Odd': subscribe: bad string \"'x'\": use double quotes at column 9 of \"event = 'x'\"",
        ),
        (
            {"apiKey": "k-1", "subscriptions": [{**PRESETS[0], "partnerAction": "trackEvent"}]},
            "subscriptions[0] 'Send Track Event': partnerAction 'trackEvent' is not one of identify, group, track",
        ),
        ({"apiKey": "k-1", "region": "io/"}, "region: 'io/' is not a Pendo CDN this importer knows"),
        ({"region": "https://cdn.pendo.io"}, "apiKey: missing; the destination's Pendo API key is required"),
        ({"apiKey": "k-1", "setVisitorIdOnLoad": "disabled"}, "unknown settings setVisitorIdOnLoad"),
    ],
)
def test_what_cannot_be_carried_over_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: dict[str, Any], expected: str
) -> None:
    out = tmp_path / "pendo.toml"
    assert main(["import-segment", str(write_settings(tmp_path, settings)), "--out", str(out)]) == 1
    assert not out.exists()
    assert expected in capsys.readouterr().err


def test_subscriptions_segments_engine_reads_differently_are_pointed_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    track = {**PRESETS[0], "name": "Not tests", "subscribe": 'type = "track" and not event = "Test"'}
    flag = {**PRESETS[0], "name": "Unpaid", "subscribe": 'type = "track" and properties.paid != true'}
    settings = {"apiKey": "k-1", "subscriptions": [track, flag, {**PRESETS[0]}]}
    out = tmp_path / "pendo.toml"
    assert main(["import-segment", str(write_settings(tmp_path, settings)), "--out", str(out)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: subscriptions[0] 'Not tests' uses 'not', which Segment's engine skips (there the condition is not "
        "negated); it will match different events than it did in Segment",
        "note: subscriptions[1] 'Unpaid' uses properties.paid != true, which always holds in Segment's engine; "
        "it will match different events than it did in Segment",
    ]


def test_an_existing_config_is_not_replaced_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pendo.toml"
    out.write_text("# mine\n")
    assert main(["import-segment", str(SETTINGS / "eu-filtered.json"), "--out", str(out)]) == 1
    assert out.read_text() == "# mine\n"
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["import-segment", str(SETTINGS / "eu-filtered.json"), "--out", str(out), "--force"]) == 0


IMPORT_EVENTS: list[dict[str, Any]] = [
    {"type": "track", "event": "Checkout Started", "userId": "u", "properties": {"cart": {"items": 2}, "x": 1}},
    {"type": "track", "event": "Viewed Checkout", "anonymousId": "a", "properties": {}},
    {"type": "track", "event": "Checkout", "properties": {"cart": "not an object"}},
    {"type": "identify", "userId": "u", "traits": {"plan": "pro"}, "context": {"groupId": "ctx"}},
    {"type": "identify", "anonymousId": "a", "traits": {}, "groupId": "g"},
    {"type": "group", "userId": "u", "groupId": "child", "traits": {"name": "C", "parentAccount": {"id": "p"}}},
    {"type": "page", "name": "Home", "properties": {"url": "https://x.example/"}},
]


def test_imported_subscriptions_select_and_map_events_as_segments_engines_do(tmp_path: Path) -> None:
    raw = json.loads((SETTINGS / "eu-filtered.json").read_text())["subscriptions"]
    out = tmp_path / "pendo.toml"
    assert main(["import-segment", str(SETTINGS / "eu-filtered.json"), "--out", str(out)]) == 0
    imported = load_config(out).subscriptions
    assert len(imported) == len(raw)
    for original, subscription in zip(raw, imported, strict=True):
        assert subscription.enabled == original["enabled"]
        segment = run_segment_engine(IMPORT_EVENTS, mapping=original["mapping"], subscribe=original["subscribe"])
        node = parse_fql(subscription.fql)
        for event, result in zip(IMPORT_EVENTS, segment.results, strict=True):
            assert evaluate_fql(node, event) == result["matches"], (original["name"], event)
            if not result["matches"]:
                continue
            ours = {name: evaluate_mapping(subscription.field_mapping(name), event) for name in original["mapping"]}
            assert {name: value for name, value in ours.items() if value is not MISSING} == result["mapped"]


@pytest.mark.browser
def test_the_imported_config_behaves_like_the_destination(
    tmp_path: Path, build_script: BuildScript, shop_factory: Callable[[Path], Shop]
) -> None:
    out = tmp_path / "pendo.toml"
    assert main(["import-segment", str(SETTINGS / "eu-filtered.json"), "--out", str(out)]) == 0
    shop = shop_factory(build_script(out.read_text()))
    shop.internet.cname_region = "eu"
    shop.open(
        page_code="""
        analytics.identify('imported-user', {plan: 'pro'});
        analytics.track('Checkout Started', {cart: {items: 2}, other: 1});
        analytics.track('Viewed Home', {});
        analytics.group('child', {name: 'Child Co', parentAccount: {id: 'parent'}});
        """
    )
    shop.wait_for_pendo()
    shop.wait_until(lambda: shop.account() == "parent::child" and len(shop.internet.tracks()) == 1)
    assert shop.internet.agent_requests == [
        "https://cdn.eu.pendo.io/agent/static/5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a/pendo.js"
    ]
    assert shop.internet.tracks() == [("Checkout Started", {"items": 2}, "imported-user")]


@pytest.mark.parametrize("key", ["0\n", "with space", "@path", "é", "a.b", ""])
def test_toml_writer_quotes_every_key_that_is_not_bare(key: str) -> None:
    import tomllib

    from generator.toml_writer import table

    assert tomllib.loads(table("t", {key: {key: key}})) == {"t": {key: {key: key}}}
