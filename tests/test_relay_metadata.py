"""Identify and group through the relay: a real relay process, local fakes of Pendo's APIs, real HTTP.

Segment's own `@segment/analytics-node` sends the calls; the fake of the metadata API records every bulk body.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from generator.relay.outbox import NewEvent, SqliteOutbox
from tests.support.fake_pendo_metadata import FakePendoMetadata, RecordedRequest, fake_pendo_metadata
from tests.support.fake_pendo_track import FakePendoTrack, fake_pendo_track
from tests.support.node_script import run_node_script
from tests.support.relay_process import RECENT_MS, SHARED_SECRET, Relay, track, wait_for

FIELDS = """
[metadata.visitor.agent]
email = { "@path" = "$.traits.email" }
[metadata.visitor.custom]
plan = { "@path" = "$.traits.plan" }
tier = { "@path" = "$.traits.tier" }
[metadata.account.agent]
name = { "@path" = "$.traits.name" }
"""


def config(window: float = 0.2, *, create: bool = True) -> str:
    return f'[pendo]\napi_key = "k-1"\n[metadata]\nwindow_seconds = {window}\ncreate = {str(create).lower()}\n{FIELDS}'


def at(offset_ms: int) -> str:
    moment = datetime.fromtimestamp((RECENT_MS + offset_ms) / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def identify(user: str, offset_ms: int = 0, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"id-{user}-{offset_ms}",
        "userId": user,
        "traits": traits,
        "timestamp": at(offset_ms),
    }


@pytest.fixture
def pendo() -> Iterator[FakePendoTrack]:
    with fake_pendo_track() as fake:
        yield fake


@pytest.fixture
def metadata() -> Iterator[FakePendoMetadata]:
    with fake_pendo_metadata(custom_fields={"visitor": {"plan"}}) as fake:
        yield fake


def start(tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata, text: str) -> Relay:
    return Relay(tmp_path, pendo.url, text, options=("--pendo-metadata-url", metadata.base_url)).start()


def requests(fake: FakePendoMetadata, kind: str, group: str) -> list[RecordedRequest]:
    with fake.lock:
        return [request for request in fake.requests if (request.kind, request.group) == (kind, group)]


def rows_by_id(request: RecordedRequest) -> dict[str, Any]:
    id_key = "visitorId" if request.kind == "visitor" else "accountId"
    return {row[id_key]: row["values"] for row in request.rows}


def test_segments_node_library_sends_identify_group_and_track_and_pendo_gets_each_bulk_body_once(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config(window=3))
    try:
        calls: list[list[Any]] = [
            ["identify", {"userId": "u1", "traits": {"email": "a@x.example", "plan": "free"}, "timestamp": at(0)}],
            ["track", {"userId": "u1", "event": "Node Event 1", "timestamp": at(0)}],
            ["identify", {"userId": "u1", "traits": {"plan": "pro"}, "timestamp": at(2000)}],
            # Sent later with an older timestamp: the relay's order of acceptance decides, so this value wins.
            ["identify", {"userId": "u1", "traits": {"email": "old@x.example"}, "timestamp": at(-1000)}],
            ["identify", {"userId": "u2", "traits": {"email": "b@x.example", "unmapped": 1}, "timestamp": at(0)}],
            ["identify", {"anonymousId": "anon-1", "traits": {"email": "c@x.example"}, "timestamp": at(0)}],
            ["group", {"userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}, "timestamp": at(0)}],
            ["track", {"userId": "u2", "event": "Node Event 2", "timestamp": at(0)}],
            ["group", {"userId": "u2", "groupId": "g1", "traits": {"name": "Acme Inc"}, "timestamp": at(500)}],
            ["identify", {"userId": "u3", "traits": {"age": 40}, "timestamp": at(0)}],  # maps nothing: skipped
            ["track", {"userId": "u3", "event": "Node Event 3", "timestamp": at(0)}],
        ]
        report = run_node_script(
            "segment_node_client.cjs",
            {"host": f"http://127.0.0.1:{relay.port}", "writeKey": SHARED_SECRET, "calls": calls},
        )
        assert report["errors"] == []
        assert report["statuses"] and set(report["statuses"]) == {200}
        wait_for(lambda: len(metadata.requests) == 3, "three bulk bodies", timeout=30)
        wait_for(lambda: len(pendo.received) == 3, "the track events")
        time.sleep(3.5)  # another window: nothing more is sent
        assert len(metadata.requests) == 3, metadata.requests
        assert sorted(pendo.names()) == ["Node Event 1", "Node Event 2", "Node Event 3"]
        (agent,) = requests(metadata, "visitor", "agent")
        assert rows_by_id(agent) == {
            "u1": {"email": "old@x.example"},
            "u2": {"email": "b@x.example"},
            "_PENDO_T_anon-1": {"email": "c@x.example"},
        }
        (custom,) = requests(metadata, "visitor", "custom")
        assert custom.rows == [{"visitorId": "u1", "values": {"plan": "pro"}}]
        (account,) = requests(metadata, "account", "agent")
        assert account.rows == [{"accountId": "g1", "values": {"name": "Acme Inc"}}]
        assert {(request.create, request.key, request.status) for request in metadata.requests} == {
            (True, "integration-key", 200)
        }
        metrics = relay.metrics()
        assert (metrics["pending"], metrics["dead_lettered"]) == (0, 0)
        assert metrics["metadata"] == {"held": 0, "bodies": 3, "rows": 5}
        assert set(metrics["concurrency"]) == {
            "track",
            "metadata/visitor/agent",
            "metadata/visitor/custom",
            "metadata/account/agent",
        }
        # A replay of the same calls is a duplicate, as a whole.
        status, answer = relay.post("/v1/batch", {"batch": [identify("u9", email="z@x.example")] * 2})
        assert (status, answer["accepted"], answer["duplicates"]) == (200, 1, 1)
    finally:
        relay.stop()


def test_an_unknown_custom_field_is_dead_lettered_with_pendos_reason_and_the_rest_is_delivered(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config())
    try:
        batch = [identify("u1", plan="pro", tier="gold"), identify("u2", plan="free", email="b@x.example")]
        status, answer = relay.post("/v1/batch", {"batch": batch})
        assert (status, answer["accepted"]) == (200, 2)
        wait_for(lambda: relay.metrics()["pending"] == 0, "every entry settled")
        refused, accepted = requests(metadata, "visitor", "custom")
        assert (refused.status, accepted.status) == (400, 200)
        assert rows_by_id(accepted) == {"u1": {"plan": "pro"}, "u2": {"plan": "free"}}
        assert metadata.values("visitor", "u1", "custom") == {"plan": "pro"}
        assert metadata.values("visitor", "u2", "agent") == {"email": "b@x.example"}
        metrics = relay.metrics()
        assert metrics["dead_letters"] == [
            {
                "messageId": "id-u1-0#visitor/custom",
                "status": 400,
                "reason": "Pendo refused tier: HTTP 400: unknown custom field(s) for visitor: tier; "
                "its other values went on without them",
            }
        ]
        assert (metrics["delivered"], metrics["dead_lettered"]) == (2, 1)
    finally:
        relay.stop()


def test_a_429_with_retry_after_pauses_that_destination_only(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config())
    try:
        metadata.mode, metadata.retry_after = "429", "2"
        relay.post("/v1/track", identify("u1", email="a@x.example"))
        wait_for(lambda: len(metadata.requests) == 1, "the first try")
        metadata.mode = "ok"
        status, health = relay.health()
        assert (status, health["destinations"]["metadata/visitor/agent"]["state"]) == (200, "paused")
        assert health["problems"]["destination metadata/visitor/agent"].startswith("paused: HTTP 429 from ")
        assert set(health["paused"]) == {"metadata/visitor/agent"}
        relay.post("/v1/track", track(1))
        wait_for(lambda: pendo.names() == ["Server Event 1"], "track events, not paused")
        assert len(metadata.requests) == 1
        wait_for(lambda: len(metadata.requests) == 2, "the retry")
        first, second = metadata.requests
        assert second.at - first.at >= 2.0
        assert second.rows == first.rows == [{"visitorId": "u1", "values": {"email": "a@x.example"}}]
        wait_for(relay.quiet, "healthz to recover")
        assert relay.metrics()["retried"] == 1
    finally:
        relay.stop()


def test_a_newer_value_never_overtakes_an_older_one_being_retried(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config())
    try:
        metadata.mode = "500"
        relay.post("/v1/track", identify("u1", 0, email="old@x.example"))
        wait_for(lambda: len(metadata.requests) == 1, "the first try")
        metadata.mode = "ok"
        relay.post("/v1/track", identify("u1", 1000, email="new@x.example"))
        wait_for(lambda: relay.metrics()["pending"] == 0, "both settled")
        assert [request.rows for request in metadata.requests] == [
            [{"visitorId": "u1", "values": {"email": "old@x.example"}}],
            [{"visitorId": "u1", "values": {"email": "new@x.example"}}],
        ]
        assert metadata.values("visitor", "u1", "agent") == {"email": "new@x.example"}
        assert relay.metrics()["delivered"] == 2
    finally:
        relay.stop()


def test_a_refused_integration_key_holds_updates_and_shows_in_healthz(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config())
    try:
        metadata.mode = "401"
        relay.post("/v1/track", identify("u1", email="a@x.example"))
        wait_for(lambda: relay.destination("metadata/visitor/agent").get("state", "ok") != "ok", "the problem")
        assert relay.health()[0] == 200
        problem = relay.health()[1]["problems"]["destination metadata/visitor/agent"]
        assert problem.startswith("HTTP 401: Pendo refused the Integration Key")
        assert relay.metrics()["dead_lettered"] == 0
        metadata.mode = "ok"
        wait_for(lambda: metadata.values("visitor", "u1", "agent") == {"email": "a@x.example"}, "delivery", 30)
        wait_for(relay.quiet, "healthz to recover")
    finally:
        relay.stop()


def test_records_pendo_does_not_know_are_dead_lettered_when_create_is_off(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    metadata.know("visitor", "u1")
    relay = start(tmp_path, pendo, metadata, config(create=False))
    try:
        relay.post("/v1/batch", {"batch": [identify("u1", email="a@x.example"), identify("u2", email="b@x.example")]})
        wait_for(lambda: relay.metrics()["pending"] == 0, "both settled")
        assert metadata.values("visitor", "u1", "agent") == {"email": "a@x.example"}
        (dead,) = relay.metrics()["dead_letters"]
        assert dead["messageId"] == "id-u2-0#visitor/agent"
        assert "not found: u2 (set [metadata] create = true to create them)" in dead["reason"]
    finally:
        relay.stop()


def test_a_refused_record_is_found_by_halving_the_body_and_only_it_is_dead_lettered(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    metadata.refused_records = {"u3"}
    relay = start(tmp_path, pendo, metadata, config())
    try:
        relay.post("/v1/batch", {"batch": [identify(f"u{index}", email=f"{index}@x.example") for index in range(5)]})
        wait_for(lambda: relay.metrics()["pending"] == 0, "every entry settled")
        assert [sorted(rows_by_id(request)) for request in metadata.requests] == [
            ["u0", "u1", "u2", "u3", "u4"],
            ["u0", "u1"],
            ["u2", "u3", "u4"],
            ["u2"],
            ["u3", "u4"],
            ["u3"],
            ["u4"],
        ]
        assert [index for index in range(5) if metadata.values("visitor", f"u{index}", "agent")] == [0, 1, 2, 4]
        assert relay.metrics()["dead_letters"] == [
            {
                "messageId": "id-u3-0#visitor/agent",
                "status": 400,
                "reason": "HTTP 400: a record holds a value that cannot be stored",
            }
        ]
    finally:
        relay.stop()


def test_sigkill_during_metadata_delivery_loses_nothing(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config())
    metadata.mode = "hang"
    batch = [identify(f"u{index}", email=f"{index}@x.example", plan="pro") for index in range(40)]
    assert relay.post("/v1/batch", {"batch": batch})[1]["accepted"] == 40
    wait_for(lambda: metadata.hung == 2, "both bodies on their way, unanswered")
    relay.kill()
    metadata.mode = "ok"
    relay.start()
    try:

        def all_written() -> bool:
            return all(
                metadata.values("visitor", f"u{index}", "agent") == {"email": f"{index}@x.example"}
                and metadata.values("visitor", f"u{index}", "custom") == {"plan": "pro"}
                for index in range(40)
            )

        wait_for(all_written, "every visitor's values", timeout=30)
        wait_for(lambda: relay.metrics()["pending"] == 0, "every entry settled")
        metrics = relay.metrics()
        assert (metrics["received"], metrics["delivered"], metrics["dead_lettered"]) == (80, 80, 0)
    finally:
        relay.stop()


def test_identify_and_group_are_refused_with_reasons_and_the_integration_key_is_required(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config())
    try:
        status, answer = relay.post("/v1/track", {"type": "group", "userId": "u1", "traits": {"name": "A"}})
        assert (status, answer["rejected"][0]["reason"]) == (
            422,
            "groupId is not set; Pendo needs an account id for a group call",
        )
        status, answer = relay.post("/v1/track", identify("u1", email={"nested": True}))
        assert (status, answer["skipped"]) == (200, 1)
        assert answer["dropped"][0]["reason"].startswith("visitor.agent.email: an object")
        status, answer = relay.post("/v1/track", {**identify("u1", email="a@x"), "timestamp": "2020-01-01T00:00:00Z"})
        assert status == 422
        assert "more than 7 days old" in answer["rejected"][0]["reason"]
    finally:
        relay.stop()

    class WithoutKey(Relay):
        def environment(self) -> dict[str, str]:
            return {name: value for name, value in super().environment().items() if name != "PENDO_INTEGRATION_KEY"}

    refused = WithoutKey(tmp_path, pendo.url, config()).run_to_exit()
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "error: set PENDO_INTEGRATION_KEY in the environment; the relay will not run without them"
    ]


def test_held_updates_survive_a_stop_and_a_damaged_entry_cannot_stop_the_others(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = start(tmp_path, pendo, metadata, config(window=60))
    relay.post("/v1/track", identify("u1", email="a@x.example"))
    wait_for(lambda: relay.metrics()["metadata"]["held"] == 1, "the update held for its window")
    relay.stop()
    assert metadata.requests == []
    outbox = SqliteOutbox(relay.db)
    outbox.add_many([NewEvent("damaged#visitor/agent", "metadata/visitor/agent", "{not json", RECENT_MS)])
    outbox.close()
    relay = start(tmp_path, pendo, metadata, config())
    try:
        wait_for(lambda: relay.metrics()["pending"] == 0, "both settled")
        assert metadata.values("visitor", "u1", "agent") == {"email": "a@x.example"}
        (dead,) = relay.metrics()["dead_letters"]
        assert (dead["messageId"], dead["status"]) == ("damaged#visitor/agent", 0)
        assert dead["reason"].startswith("the stored entry is not JSON")
    finally:
        relay.stop()
