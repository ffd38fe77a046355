"""The test kit's pure parts: what it reads from recorded calls and beacons, and its failure messages."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from generator.demo.beacons import jzb_payloads
from generator.errors import GeneratorError
from generator.testing import messages, observed
from generator.testing.agents import find_agent
from generator.testing.network import PendoHosts


def _jzb(value: object) -> str:
    return base64.urlsafe_b64encode(zlib.compress(json.dumps(value).encode())).decode().rstrip("=")


def test_beacons_decode_from_query_and_body() -> None:
    events = [{"type": "track", "visitor_id": "u-1", "track_event_name": "Saved", "props": {"a": 1}}]
    assert jzb_payloads(f"https://app.pendo.io/data/ptm.gif/k?jzb={_jzb(events)}", None) == [events]
    assert jzb_payloads("https://app.pendo.io/data/ptm.gif/k", json.dumps({"jzb": _jzb(events)})) == [events]


def test_agent_events_are_read_once_and_the_latest_ids_win() -> None:
    meta1 = {
        "type": "meta",
        "visitor_id": "u-1",
        "account_id": "a-1",
        "props": {"visitor": {"id": "u-1", "plan": "free"}},
    }
    meta2 = {
        "type": "meta",
        "visitor_id": "u-1",
        "account_id": "a-1",
        "props": {"visitor": {"id": "u-1", "plan": "pro"}, "account": {"id": "a-1", "name": "Acme"}},
    }
    track = {"type": "track", "visitor_id": "u-1", "account_id": "a-1", "track_event_name": "Saved", "props": {"n": 2}}
    events = observed.agent_events([[meta1, meta2], [meta2, track]])
    assert len(events) == 3
    visitor, account = observed.identities_from_events(events)
    assert visitor == observed.Identity("u-1", {"plan": "pro"})
    assert account == observed.Identity("a-1", {"name": "Acme"})
    assert observed.tracks_from_events(events) == [observed.TrackEvent("Saved", {"n": 2})]


def test_calls_in_page_order_make_visitor_account_and_tracks() -> None:
    calls = observed.calls_from(
        [
            {"seq": 2, "method": "identify", "args": ["u-2", "a-9"]},
            {"seq": 0, "method": "initialize", "args": [{"visitor": {"id": "u-1", "plan": "pro"}}]},
            {"seq": 1, "method": "updateOptions", "args": [{"visitor": {"email": "x@example.com"}}]},
            {"seq": 3, "method": "track", "args": ["Saved", {"n": 1}]},
        ]
    )
    assert [call.method for call in calls] == ["initialize", "updateOptions", "identify", "track"]
    visitor, account = observed.identities_from_calls(calls[:2])
    assert visitor == observed.Identity("u-1", {"plan": "pro", "email": "x@example.com"})
    visitor, account = observed.identities_from_calls(calls)
    assert (visitor.id, visitor.metadata, account.id) == ("u-2", {}, "a-9")
    assert observed.tracks_from_calls(calls) == [observed.TrackEvent("Saved", {"n": 1})]
    cleared = observed.identities_from_calls([*calls, observed.Call("clearSession", [])])
    assert cleared == (observed.Identity(None), observed.Identity(None))


def test_segment_batches_are_unpacked() -> None:
    bodies: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u"},
        {"batch": [{"type": "track", "event": "A"}, "junk"]},
    ]
    assert observed.segment_events(bodies) == [{"type": "identify", "userId": "u"}, {"type": "track", "event": "A"}]


def test_a_failure_message_shows_expected_got_and_each_difference() -> None:
    text = messages.report(
        "Pendo's visitor is not the expected one",
        {"id": "u-1", "plan": "pro", "address": {"city": "Paris"}, "seats": 3},
        {"id": "u-1", "plan": "free", "address": {"city": "Lyon"}, "email": "a@b"},
        ["a note"],
    )
    assert text.splitlines() == [
        "Pendo's visitor is not the expected one",
        "  expected:  id='u-1', address={'city': 'Paris'}, plan='pro', seats=3",
        "  Pendo got: id='u-1', address={'city': 'Lyon'}, email='a@b', plan='free'",
        "  differences:",
        "    plan: expected 'pro', got 'free'",
        "    address.city: expected 'Paris', got 'Lyon'",
        "    seats: expected 3, missing",
        "  a note",
    ]
    assert messages.report("t", {"id": "x"}, None, [], who="Segment").splitlines()[1:] == [
        "  expected:    id='x'",
        "  Segment got: nothing",
    ]


def test_matching_is_a_subset_check() -> None:
    assert messages.matches({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
    assert not messages.matches({"a": 1}, {"a": "1"})


def test_agent_lookup(tmp_path: Path) -> None:
    assert find_agent("stand-in", tmp_path).kind == "stand-in"
    with pytest.raises(GeneratorError, match="is not @pendo/agent"):
        find_agent(str(tmp_path / "nowhere"), tmp_path)
    package = tmp_path / "node_modules" / "@pendo" / "agent" / "dist"
    package.mkdir(parents=True)
    (package / "pendo.module.js").write_text("function loadAgent() {}\nexport { loadAgent };\n")
    (package / "servers.json").write_text("{}")
    nested = tmp_path / "app" / "tests"
    nested.mkdir(parents=True)
    assert find_agent(None, nested).package == package.parent
    assert find_agent(str(tmp_path / "node_modules"), nested).package == package.parent


def test_pendo_hosts_know_regions_and_cnames() -> None:
    hosts = PendoHosts("eu", frozenset({"pendo.shop.example"}))
    assert hosts.is_pendo("cdn.eu.pendo.io") and hosts.is_pendo("pendo.shop.example")
    assert not hosts.is_pendo("evilpendo.io") and not hosts.is_pendo("shop.example")
    assert hosts.region_of("app.jpn.pendo.io") == "jp"
    assert hosts.region_of("pendo.shop.example") == "eu"
