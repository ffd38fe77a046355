"""The Webhooks (Actions) mapping: golden per region, the same rules as the relay, secrets kept out."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from generator.cli import main
from generator.config_loader import parse_config
from generator.regions import REGIONS, track_events_url
from generator.relay.convert import RejectedEvent, track_body
from generator.webhook import SECRET_PLACEHOLDER, webhook_document
from tests.support.segment_engine import run_segment_engine

GOLDEN = Path(__file__).parent / "golden" / "webhook"


def config(**tables: Any) -> Any:
    return parse_config({"pendo": {"api_key": "k-1", **tables.pop("pendo", {})}, "webhook": {}, **tables})


@pytest.mark.parametrize("region", REGIONS)
def test_webhook_document_matches_golden_per_region(region: str, update_golden: bool) -> None:
    document = webhook_document(config(pendo={"region": region}))
    golden = GOLDEN / f"{region}.json"
    if update_golden:
        golden.write_text(json.dumps(document, indent=2) + "\n")
        return
    assert document == json.loads(golden.read_text()), "rerun with --update-golden and review the diff"


def _event(name: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": f"m-{name}", **fields}


# Realistic server and mobile events as Segment delivers them: ISO timestamps in several offsets, with
# milliseconds above and below 500 (where Liquid's rounding %s would be a second off), every id source.
EVENTS = [
    _event(
        "Everything",
        userId="u-1",
        anonymousId="an-1",
        timestamp="2024-01-15T10:20:30.750Z",
        properties={"a": 1, "groupId": "g-p", "nested": {"b": [1, "two"]}},
        context={
            "groupId": "g-c",
            "ip": "203.0.113.1",
            "userAgent": "UA/1.0",
            "page": {"url": "https://x.example/p", "title": "T"},
            "library": {"name": "analytics-node"},
        },
    ),
    _event("Anonymous", anonymousId="an-2", timestamp="2024-03-31T01:30:00.250+02:00", properties={"groupId": "g"}),
    _event("User only", userId="u-3", timestamp="2023-12-31T23:59:59.999-05:30", properties={}),
    _event("Whole second", userId="u-4", anonymousId="an-4", timestamp="2024-02-29T12:00:00.000Z"),
    _event("Account in context", userId="u-5", timestamp="2025-06-01T00:00:00.500Z", context={"groupId": "acct"}),
    _event("Mobile", anonymousId="an-6", timestamp="2026-11-28T17:44:38.123Z", context={"ip": "198.51.100.7"}),
]
NOT_TRACK: list[dict[str, Any]] = [
    {"type": "identify", "userId": "u-1", "traits": {}},
    {"type": "page", "userId": "u-1", "name": "Home"},
    {"type": "group", "userId": "u-1", "groupId": "g"},
]
VISITOR_RULES = ["user_id_or_anonymous", "user_id", "anonymous"]


@pytest.mark.parametrize("rule", VISITOR_RULES)
def test_segments_engine_maps_each_event_to_the_relays_body(rule: str) -> None:
    subscription = webhook_document(config(on_load={"visitor_id": rule}))["subscriptions"][0]
    usable = []
    for event in EVENTS:
        try:
            usable.append((event, track_body(event, rule)))  # type: ignore[arg-type]
        except RejectedEvent:
            continue
    assert len(usable) >= 4
    run = run_segment_engine(
        [event for event, _ in usable], mapping=subscription["mapping"], subscribe=subscription["subscribe"]
    )
    assert run.mapping_error is None and run.subscribe_error is None
    for (event, expected), result in zip(usable, run.results, strict=True):
        assert result["matches"] is True
        assert result["mapped"]["data"] == expected, event["event"]
        assert isinstance(result["mapped"]["data"]["timestamp"], int)


def test_segments_engine_subscribes_only_to_track_events() -> None:
    subscription = webhook_document(config())["subscriptions"][0]
    run = run_segment_engine(NOT_TRACK, subscribe=subscription["subscribe"])
    assert [result["matches"] for result in run.results] == [False, False, False]


@pytest.mark.parametrize("region", REGIONS)
def test_segment_accepts_each_regions_mapping(region: str) -> None:
    mapping = webhook_document(config(pendo={"region": region}))["subscriptions"][0]["mapping"]
    run = run_segment_engine([EVENTS[0]], mapping=mapping)
    assert run.mapping_error is None
    assert run.results[0]["mapped"]["url"] == track_events_url(region)
    assert run.results[0]["mapped"]["method"] == "POST"


def test_the_relay_sends_what_pendo_documents_for_a_timestamp() -> None:
    # Pendo: "timestamp: int64 in milliseconds after the epoch"; 2024-01-15T10:20:30.750Z is 1705314030750.
    assert track_body(EVENTS[0])["timestamp"] == 1705314030750


def test_the_secret_is_written_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text(
        '[pendo]\napi_key = "k-1"\nregion = "eu"\n[webhook]\nsecret_env = "MY_PENDO_SECRET"\ncovers_web_source = true\n'
    )
    out = tmp_path / "webhook.json"
    monkeypatch.setenv("MY_PENDO_SECRET", "s3cr3t")
    assert main(["webhook", "--config", str(path), "--out", str(out)]) == 0
    headers = json.loads(out.read_text())["subscriptions"][0]["mapping"]["headers"]
    assert headers["x-pendo-integration-key"] == SECRET_PLACEHOLDER
    assert "s3cr3t" not in out.read_text()
    printed = capsys.readouterr().out
    assert "https://app.eu.pendo.io/data/track" in printed and "every web track event reaches Pendo twice" in printed
    assert main(["webhook", "--config", str(path), "--out", str(out), "--include-secret"]) == 0
    assert json.loads(out.read_text())["subscriptions"][0]["mapping"]["headers"]["x-pendo-integration-key"] == "s3cr3t"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    monkeypatch.delenv("MY_PENDO_SECRET")
    assert main(["webhook", "--config", str(path), "--out", str(tmp_path / "other.json"), "--include-secret"]) == 1
    assert "MY_PENDO_SECRET is not set" in capsys.readouterr().err
    assert not (tmp_path / "other.json").exists()


def test_build_warns_when_web_track_events_would_reach_pendo_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = tmp_path / "both.toml"
    both.write_text('[pendo]\napi_key = "k-1"\n[webhook]\ncovers_web_source = true\n')
    assert main(["build", "--config", str(both), "--out", str(tmp_path / "out")]) == 0
    assert "each web track event would reach Pendo twice" in capsys.readouterr().err
    separate = tmp_path / "separate.toml"
    separate.write_text('[pendo]\napi_key = "k-1"\n[webhook]\ncovers_web_source = false\n')
    assert main(["build", "--config", str(separate), "--out", str(tmp_path / "out2")]) == 0
    assert "twice" not in capsys.readouterr().err
    # An empty [webhook] table (every key at its default) connects mobile and server sources only: no warning.
    empty = tmp_path / "empty.toml"
    empty.write_text('[pendo]\napi_key = "k-1"\n[webhook]\n')
    assert main(["build", "--config", str(empty), "--out", str(tmp_path / "out3")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_config_without_a_webhook_table_is_told_what_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text('[pendo]\napi_key = "k-1"\n')
    assert main(["webhook", "--config", str(path), "--out", str(tmp_path / "w.json")]) == 1
    assert "the config has no [webhook] table" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rule", "event", "reason"),
    [
        ("user_id", {"type": "track", "event": "E", "anonymousId": "a"}, "userId is not set ([on_load] visitor_id"),
        ("anonymous", {"type": "track", "event": "E", "userId": "u"}, "anonymousId is not set"),
        ("user_id_or_anonymous", {"type": "track", "event": "E"}, "neither userId nor anonymousId is set"),
    ],
)
def test_the_relay_names_the_visitor_rule_an_event_cannot_meet(rule: str, event: dict[str, Any], reason: str) -> None:
    with pytest.raises(RejectedEvent, match=reason.replace("(", r"\(").replace("[", r"\[")):
        track_body(event, rule)  # type: ignore[arg-type]
