"""Injection: hostile strings in every free-text config field stay inert data, byte for byte.

Each payload goes into a subscription name, mapping literals, a quoted @path key, event and key
filters, an FQL string (where FQL can hold it), a consent category, the agent's free-text options
and an extra agent option. The
built script must parse and run, open no dialog, add no script, and carry each value unchanged to
where it is mapped, as the real Pendo agent sends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Dialog

from generator.toml_writer import value as toml_value
from tests.conftest import BuildScript, default_config
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

PAYLOADS = [
    "</script><script>window.__pwned = 1</script>",
    "<!--<script>",
    '"; window.__pwned = 1; //',
    "'; window.__pwned = 1; //",
    '\\" \\\\ \\u0041 \\n',
    "line\u2028separator\u2029paragraph",
    "${window.__pwned = 1}",
    "{{ 7 * 7 }} {% raw %}",
    "*/ window.__pwned = 1; /*",
    "nul\u0000byte",
    '<img src=x onerror="window.__pwned = 1">',
    "]]}); window.__pwned = 1; ({[[",
]


def config_with(payload: str) -> str:
    quoted_key_path = "$.properties[" + json.dumps(payload) + "]"
    lines = [
        default_config().rstrip("\n"),
        "[pendo.options]",
        f"allowedText = [{toml_value(payload)}]",
        f"queryStringWhitelist = [{toml_value(payload)}]",
        f"inlineStyleNonce = {toml_value(payload)}",
        "[pendo.options.extra]",
        f"note = {toml_value(payload)}",
        "[consent]",
        f"categories = [{toml_value(payload)}]",
        "[build]",
        "debug = true",
        "[[subscriptions]]",
        'action = "track"',
        f"name = {toml_value(payload)}",
        f"events = {{ allow = [{toml_value(payload)}] }}",
        "[subscriptions.mapping]",
        'event = "Injected"',
        f'metadata = {{ literal = {toml_value(payload)}, viaPath = {{ "@path" = {toml_value(quoted_key_path)} }} }}',
        "[[subscriptions]]",
        'action = "track"',
        f"keys = {{ deny = [{toml_value(payload)}] }}",
        f"events = {{ allow = [{toml_value(payload)}] }}",
        "[subscriptions.mapping]",
        'event = { "@template" = "Echo {{event}}" }',
        "[[subscriptions]]",
        'action = "identify"',
        "[subscriptions.mapping]",
        f"visitorData = {{ note = {toml_value(payload)} }}",
    ]
    if '"' not in payload:
        lines += [
            "[[subscriptions]]",
            'action = "track"',
            f"subscribe = {toml_value(f'type = {chr(34)}track{chr(34)} and event = {chr(34)}{payload}{chr(34)}')}",
            "[subscriptions.mapping]",
            'event = "FQL matched"',
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"payload{index}" for index in range(len(PAYLOADS))])
def test_payload_is_inert_data_everywhere(
    payload: str, build_script: BuildScript, shop_factory: Callable[[Path], Shop]
) -> None:
    shop = shop_factory(build_script(config_with(payload)))
    dialogs: list[str] = []

    def record_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    shop.page.on("dialog", record_dialog)
    shop.open(
        before_script="""
      analytics.addSourceMiddleware(function (m) {
        m.payload.obj.context.consent = {categoryPreferences: window.grantedCategories || {}};
        m.next(m.payload);
      });"""
    )
    shop.wait_for_segment()
    shop.page.evaluate(
        """(payload) => {
          window.grantedCategories = {[payload]: true};
          analytics.identify('injected-user', {});
          analytics.track(payload, {[payload]: 'v', other: 1});
        }""",
        payload,
    )
    shop.wait_for_pendo()
    expected_tracks = 3 if '"' not in payload else 2
    shop.wait_until(lambda: len(shop.internet.tracks()) >= expected_tracks and shop.visitor() == "injected-user")
    shop.page.wait_for_timeout(200)

    tracks = {name: props for name, props, _ in shop.internet.tracks()}
    assert tracks["Injected"] == {"literal": payload, "viaPath": "v"}
    assert tracks[f"Echo {payload}"] == {"other": 1}
    if '"' not in payload:
        assert "FQL matched" in tracks
    visitor: dict[str, Any] = {}
    for meta in shop.internet.metadata():
        visitor.update(meta.get("visitor") or {})
    assert visitor["note"] == payload
    log = shop.page.evaluate("() => window.segmentPendoDebug.log")
    assert payload in [entry["detail"]["name"] for entry in log if entry["kind"] == "subscription"]
    initialize = next(entry["detail"][0] for entry in log if entry["kind"] == "pendo.initialize")
    assert initialize["note"] == payload
    assert initialize["allowedText"] == [payload]
    assert initialize["queryStringWhitelist"] == [payload]
    assert initialize["inlineStyleNonce"] == payload

    assert dialogs == []
    assert shop.page.evaluate("() => window.__pwned") is None
    sources = shop.page.evaluate(
        "() => Array.from(document.scripts).map((s) => s.src ? new URL(s.src).pathname : 'inline')"
    )
    assert sorted(sources) == sorted(
        [
            "/js/segment-snippet.js",
            "inline",
            "/js/segment-pendo.min.js",
            "/analytics.js/v1/wk_test_1234/analytics.min.js",
            "/agent/static/5e5b1b2c-7d0a-4d6e-9b1f-3c2a1d0e9f8a/pendo.js",
        ]
    )
