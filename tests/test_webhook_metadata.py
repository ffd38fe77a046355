"""The Webhooks (Actions) subscriptions for identify and group: golden, Segment's own engine, the relay's rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from generator.cli import main
from generator.config_loader import parse_config
from generator.relay.convert import RejectedEvent, VisitorRule
from generator.relay.metadata import convert
from generator.webhook import INTEGRATION_KEY_PLACEHOLDER, checklist, webhook_document
from tests.support.fake_pendo_metadata import fake_pendo_metadata
from tests.support.segment_engine import run_segment_engine

GOLDEN = Path(__file__).parent / "golden" / "webhook" / "metadata.json"
METADATA = {
    "visitor": {
        "agent": {
            "email": {"@path": "$.traits.email"},
            "full_name": {"@template": "{{traits.first}} {{traits.last}}"},
            "role": {"@if": {"exists": {"@path": "$.traits.role"}, "then": {"@path": "$.traits.role"}, "else": "user"}},
        },
        "custom": {"plan": {"@path": "$.traits.plan"}, "source": "server"},
    },
    "account": {"agent": {"name": {"@path": "$.traits.name"}, "seats": {"@path": "$.traits.seats"}}},
    "parent_account": {"custom": {"region": {"@path": "$.traits.parentAccount.region"}}},
}


def config(rule: str = "user_id_or_anonymous", **metadata: Any) -> Any:
    return parse_config(
        {
            "pendo": {"api_key": "k-1", "region": "eu"},
            "on_load": {"visitor_id": rule},
            "metadata": {**METADATA, **metadata},
        }
    )


def test_webhook_document_with_metadata_matches_golden(update_golden: bool) -> None:
    document = webhook_document(config())
    if update_golden:
        GOLDEN.write_text(json.dumps(document, indent=2) + "\n")
        return
    assert document == json.loads(GOLDEN.read_text()), "rerun with --update-golden and review the diff"


def test_one_batched_subscription_per_record_kind_and_field_group() -> None:
    subscriptions = webhook_document(config(create=False, max_rows=250))["subscriptions"]
    assert [(item["subscribe"], item["mapping"]["url"]) for item in subscriptions] == [
        ('type = "identify"', "https://app.eu.pendo.io/api/v1/metadata/visitor/agent/value"),
        ('type = "identify"', "https://app.eu.pendo.io/api/v1/metadata/visitor/custom/value"),
        ('type = "group"', "https://app.eu.pendo.io/api/v1/metadata/account/agent/value"),
        ('type = "group"', "https://app.eu.pendo.io/api/v1/metadata/parentAccount/custom/value"),
    ]
    for item in subscriptions:
        assert item["mapping"]["enable_batching"] is True and item["mapping"]["batch_size"] == 250
        assert item["mapping"]["headers"]["x-pendo-integration-key"] == INTEGRATION_KEY_PLACEHOLDER


def _identify(**fields: Any) -> dict[str, Any]:
    return {"type": "identify", "timestamp": "2026-11-28T10:00:00Z", **fields}


def _group(**fields: Any) -> dict[str, Any]:
    return {"type": "group", "timestamp": "2026-11-28T10:00:00Z", **fields}


EVENTS: list[dict[str, Any]] = [
    _identify(
        messageId="i-1",
        userId="u-1",
        anonymousId="an-1",
        traits={"email": "a@example.com", "first": "Ada", "last": "L", "plan": "pro", "role": "admin"},
    ),
    _identify(messageId="i-2", anonymousId="an-2", traits={"email": "anon@example.com"}),
    _identify(messageId="i-3", userId="u-3", traits={"plan": None, "email": None, "role": None}),
    _identify(messageId="i-4", userId="u-4", anonymousId="an-4", traits={"first": "Only"}, context={"groupId": "g"}),
    _identify(messageId="i-5", userId=42, traits={"plan": ["a", "b"], "email": "n@example.com"}),
    _group(messageId="g-1", userId="u-1", groupId="acme", traits={"name": "Acme", "seats": 12}),
    _group(
        messageId="g-2",
        groupId="sub",
        traits={"name": "Sub", "parentAccount": {"id": "holding", "region": "emea"}},
    ),
    _group(messageId="g-3", groupId="bare", traits={}),
    _group(messageId="g-4", groupId="p", traits={"parentAccount": {"id": "hold-2"}, "seats": 0}),
    _group(messageId="g-5", groupId=7, traits={"name": "Numbers", "parentAccount": {"id": 9, "region": "apac"}}),
    {"type": "track", "event": "Not metadata", "userId": "u-1", "messageId": "t-1"},
    {"type": "page", "userId": "u-1", "messageId": "p-1"},
]


@pytest.mark.parametrize("rule", ["user_id_or_anonymous", "user_id", "anonymous"])
def test_segments_engine_maps_each_call_to_the_relays_row(rule: VisitorRule) -> None:
    settings = config(rule)
    for subscription in webhook_document(settings)["subscriptions"]:
        mapping = subscription["mapping"]
        run = run_segment_engine(EVENTS, mapping=mapping, subscribe=subscription["subscribe"])
        assert run.mapping_error is None and run.subscribe_error is None
        path = urlsplit(mapping["url"]).path.split("/")
        kind, group = path[4], path[5]
        compared = 0
        for event, result in zip(EVENTS, run.results, strict=True):
            assert result["matches"] is (event["type"] == subscription["subscribe"].split('"')[1])
            if not result["matches"]:
                continue
            try:
                conversion = convert(event, settings.metadata, rule)
            except RejectedEvent:
                continue  # the relay refuses it (no visitor under this rule): nothing to compare
            rows = [
                update
                for update in conversion.updates
                if (update.destination.kind, update.destination.group) == (kind, group)
            ]
            data = result["mapped"]["data"]
            if kind == "parentAccount" and "parentAccountId" not in data:
                assert rows == []  # no parent in this call: Segment's row has no id, the relay writes none
                continue
            if not rows:
                # The relay skips a row without values; Segment sends it (an upsert of nothing).
                assert data["values"] == {}
                continue
            [row] = rows
            assert data == {row.destination.id_key: row.record_id, "values": dict(row.values)}, event["messageId"]
            compared += 1
        assert compared >= 2, (kind, group, rule)


def test_segments_batch_body_is_what_pendos_metadata_api_takes() -> None:
    settings = config()
    subscription = webhook_document(settings)["subscriptions"][0]
    identifies = [event for event in EVENTS if event["type"] == "identify"]
    run = run_segment_engine(identifies, mapping=subscription["mapping"])
    # Segment's Send action with batching posts the batch's mapped data as one JSON list.
    batch = [result["mapped"]["data"] for result in run.results]
    with fake_pendo_metadata() as fake, httpx.Client(timeout=5) as client:
        url = fake.base_url + urlsplit(subscription["mapping"]["url"]).path + "?create=true"
        response = client.post(url, json=batch, headers={"x-pendo-integration-key": fake.integration_key})
        assert response.status_code == 200
        assert response.json()["updated"] == len(identifies)
        assert fake.values("visitor", "u-1", "agent") == {
            "email": "a@example.com",
            "full_name": "Ada L",
            "role": "admin",
        }
        assert fake.values("visitor", "_PENDO_T_an-2", "agent")["email"] == "anon@example.com"


def test_the_integration_key_is_written_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text(
        '[pendo]\napi_key = "k-1"\n[metadata]\nsecret_env = "MY_PENDO_KEY"\n'
        '[metadata.visitor.agent]\nemail = { "@path" = "$.traits.email" }\n'
    )
    out = tmp_path / "webhook.json"
    monkeypatch.setenv("MY_PENDO_KEY", "ik-s3cr3t")
    assert main(["webhook", "--config", str(path), "--out", str(out)]) == 0
    assert "ik-s3cr3t" not in out.read_text()
    printed = capsys.readouterr().out
    assert "Integration Key with write access" in printed and "Data mappings" in printed
    assert "data/track" not in printed
    assert main(["webhook", "--config", str(path), "--out", str(out), "--include-secret"]) == 0
    [subscription] = json.loads(out.read_text())["subscriptions"]
    assert subscription["mapping"]["headers"]["x-pendo-integration-key"] == "ik-s3cr3t"
    monkeypatch.delenv("MY_PENDO_KEY")
    assert main(["webhook", "--config", str(path), "--out", str(tmp_path / "other.json"), "--include-secret"]) == 1
    assert "MY_PENDO_KEY is not set" in capsys.readouterr().err
    assert not (tmp_path / "other.json").exists()


def test_the_checklist_says_when_one_destination_cannot_hold_every_mapping() -> None:
    with_track = parse_config({"pendo": {"api_key": "k-1"}, "webhook": {}, "metadata": METADATA})
    assert any("That is 5 mappings" in step for step in checklist(with_track)) is False
    bigger = {**METADATA, "account": {"agent": {"name": "x"}, "custom": {"tier": "y"}}}
    crowded = parse_config({"pendo": {"api_key": "k-1"}, "webhook": {}, "metadata": bigger})
    assert any("That is 6 mappings" in step and "second Webhooks (Actions)" in step for step in checklist(crowded))


def test_check_lists_the_metadata_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pendo.toml"
    path.write_text(
        '[pendo]\napi_key = "k-1"\nregion = "jp"\n[metadata]\ncreate = false\n'
        '[metadata.account.custom]\ntier = { "@path" = "$.traits.tier" }\nsize = 1\n'
    )
    assert main(["check", "--config", str(path)]) == 0
    assert (
        '  [metadata] type = "group": POST https://app.jpn.pendo.io/api/v1/metadata/account/custom/value (tier, size)\n'
        in capsys.readouterr().out
    )
