"""The Webhooks (Actions) mapping: golden per region, the same rules as the relay, secrets kept out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from generator.cli import main
from generator.config_loader import parse_config
from generator.mapping import MISSING, evaluate_mapping
from generator.regions import REGIONS
from generator.relay.convert import track_body
from generator.webhook import SECRET_PLACEHOLDER, webhook_document

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


EVENTS = [
    {
        "type": "track",
        "event": "Server",
        "userId": "u-1",
        "properties": {"a": 1, "groupId": "g-p"},
        "context": {
            "groupId": "g-c",
            "ip": "203.0.113.1",
            "userAgent": "UA",
            "page": {"url": "https://x", "title": "T"},
        },
    },
    {"type": "track", "event": "Anon", "anonymousId": "an-1", "properties": {"groupId": "g-p"}},
]


@pytest.mark.parametrize("event", EVENTS)
def test_the_mapping_follows_the_relays_rules(event: dict[str, Any]) -> None:
    data = webhook_document(config())["subscriptions"][0]["mapping"]["data"]
    mapped = {key: evaluate_mapping(value, event) for key, value in data.items() if key != "timestamp"}
    mapped = {key: value for key, value in mapped.items() if value is not MISSING}
    mapped["context"] = {key: value for key, value in mapped.get("context", {}).items() if value is not MISSING}
    expected = track_body(event)
    del expected["timestamp"]
    expected.setdefault("context", {})
    assert mapped == expected


def test_the_secret_is_written_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text('[pendo]\napi_key = "k-1"\nregion = "eu"\n[webhook]\nsecret_env = "MY_PENDO_SECRET"\n')
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
    monkeypatch.delenv("MY_PENDO_SECRET")
    assert main(["webhook", "--config", str(path), "--out", str(tmp_path / "other.json"), "--include-secret"]) == 1
    assert "MY_PENDO_SECRET is not set" in capsys.readouterr().err
    assert not (tmp_path / "other.json").exists()


def test_build_warns_when_web_track_events_would_reach_pendo_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = tmp_path / "both.toml"
    both.write_text('[pendo]\napi_key = "k-1"\n[webhook]\n')
    assert main(["build", "--config", str(both), "--out", str(tmp_path / "out")]) == 0
    assert "each web track event would reach Pendo twice" in capsys.readouterr().err
    separate = tmp_path / "separate.toml"
    separate.write_text('[pendo]\napi_key = "k-1"\n[webhook]\ncovers_web_source = false\n')
    assert main(["build", "--config", str(separate), "--out", str(tmp_path / "out2")]) == 0
    assert "twice" not in capsys.readouterr().err


def test_a_config_without_a_webhook_table_is_told_what_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text('[pendo]\napi_key = "k-1"\n')
    assert main(["webhook", "--config", str(path), "--out", str(tmp_path / "w.json")]) == 1
    assert "the config has no [webhook] table" in capsys.readouterr().err
