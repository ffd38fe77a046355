"""The Webhooks (Actions) subscription for Engage audiences, and `check`'s audience lines."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from generator.cli import main
from generator.config_loader import parse_config
from generator.fql import parse_fql
from generator.relay.intake import convert
from generator.webhook import checklist, webhook_document
from generator.webhook_audiences import RELAY_SECRET_PLACEHOLDER
from tests.support.segment_engine import run_segment_engine

AUDIENCES = {"relay_url": "https://relay.example.com/", "deny": ["internal"], "segments": {"vip": "seg-1"}}


def config(**audiences: Any) -> Any:
    return parse_config({"pendo": {"api_key": "k-1"}, "audiences": {**AUDIENCES, **audiences}})


def engage(kind: str, key: str, member: Any, **extra: Any) -> dict[str, Any]:
    personas = {"computation_class": "audience", "computation_key": key, "computation_id": "aud_1"}
    event: dict[str, Any] = {"type": kind, "userId": "u-1", "messageId": f"m-{kind}-{key}-{member}"}
    if kind == "identify":
        event["traits"] = {key: member}
    else:
        event |= {"event": "Audience Entered" if member else "Audience Exited", "properties": {key: member}}
    return {**event, "context": {"personas": personas}, **extra}


EVENTS = [
    engage("identify", "vip", True),
    engage("track", "vip", False),
    engage("track", "internal", True),
    {**engage("identify", "vip", True), "context": {"personas": {"computation_class": "computed_trait"}}},
    {"type": "track", "event": "Order Completed", "userId": "u-1"},
    {"type": "identify", "userId": "u-1", "traits": {"vip": True}},
    {"type": "group", "groupId": "g", "context": {"personas": {"computation_class": "audience"}}},
]


def test_segments_engine_sends_exactly_the_engage_audience_calls_to_the_relay_as_they_are() -> None:
    [subscription] = webhook_document(config())["subscriptions"]
    mapping = subscription["mapping"]
    assert mapping["url"] == "https://relay.example.com/v1/batch" and mapping["enable_batching"] is True
    assert mapping["headers"]["authorization"] == RELAY_SECRET_PLACEHOLDER
    run = run_segment_engine(EVENTS, mapping=mapping, subscribe=subscription["subscribe"])
    assert run.mapping_error is None and run.subscribe_error is None
    assert [result["matches"] for result in run.results] == [True, True, True, False, False, False, False]
    for event, result in zip(EVENTS, run.results, strict=True):
        assert result["mapped"]["data"] == event  # the whole call: the relay reads both shapes itself
    # What the relay makes of them: memberships, the denied audience skipped.
    sent = [result["mapped"]["data"] for result in run.results if result["matches"]]
    converted = convert(sent, "user_id", parse_fql('type = "track"'), None, config().audiences)
    assert (len(converted.events), converted.skipped, converted.rejected) == (2, 1, [])


def test_the_relays_secret_is_written_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text('[pendo]\napi_key = "k-1"\n[audiences]\nrelay_url = "https://relay.example.com"\n')
    out = tmp_path / "webhook.json"
    monkeypatch.setenv("RELAY_SHARED_SECRET", "s3cr3t")
    assert main(["webhook", "--config", str(path), "--out", str(out)]) == 0
    assert "s3cr3t" not in out.read_text() and "czNjcjN0" not in out.read_text()
    printed = capsys.readouterr().out
    assert "Engage > the audience > Destinations" in printed and "segment-pendo audiences list" in printed
    assert main(["webhook", "--config", str(path), "--out", str(out), "--include-secret"]) == 0
    [subscription] = json.loads(out.read_text())["subscriptions"]
    expected = "Basic " + base64.b64encode(b"s3cr3t:").decode()
    assert subscription["mapping"]["headers"]["authorization"] == expected


def test_the_checklist_has_the_engage_steps_only_with_audiences() -> None:
    assert any("Engage" in step for step in checklist(config()))
    assert not any("Engage" in step for step in checklist(parse_config({"pendo": {"api_key": "k"}, "webhook": {}})))


def test_check_lists_the_audience_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text(
        '[pendo]\napi_key = "k-1"\n[audiences]\ncreate = false\nmax_visitors = 200\nvisitor_id = "user_id_or_anonymous"\n'
        '[audiences.segments]\nvip = "seg-1"\ntrial = "seg-2"\n'
    )
    assert main(["check", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    assert (
        "  [audiences] audiences vip, trial → Pendo Segments\n"
        "  [audiences] trial → segment seg-2\n"
        "  [audiences] vip → segment seg-1\n"
        "  [audiences] any other audience → not sent (create = false)\n"
        "  [audiences] visitor: user_id_or_anonymous; at most 200 visitors a request\n"
    ) in printed
