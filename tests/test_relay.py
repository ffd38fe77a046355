"""The relay over real HTTP: a real relay process, a local fake of Pendo's Track Events API, real requests."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.errors import StorageError
from generator.relay.app import DAY_MS
from generator.relay.convert import RejectedEvent, track_body
from generator.relay.outbox import DUE_QUERY, DeadLetter, Delivered, NewEvent, Outbox, RetryLater, SqliteOutbox
from tests.support.fake_pendo_track import FakePendoTrack, fake_pendo_track
from tests.support.node_script import run_node_script
from tests.support.outboxes import table_rows
from tests.support.relay_process import (
    PENDO_SECRET,
    RECENT,
    RECENT_MS,
    SHARED_SECRET,
    Relay,
    assert_recovered,
    track,
    wait_for,
)


@pytest.fixture
def pendo() -> Iterator[FakePendoTrack]:
    with fake_pendo_track() as fake:
        yield fake


@pytest.fixture
def relay(tmp_path: Path, pendo: FakePendoTrack) -> Iterator[Relay]:
    running = Relay(tmp_path, pendo.url).start()
    yield running
    running.stop()


def test_every_event_is_delivered_once_with_the_pendo_body(relay: Relay, pendo: FakePendoTrack) -> None:
    for index in range(10):
        assert relay.post("/v1/track", track(index))[0] == 200
    status, result = relay.post("/v1/batch", {"batch": [track(index) for index in range(5, 30)]})
    assert (status, result["accepted"], result["duplicates"]) == (200, 20, 5)
    wait_for(lambda: len(pendo.received) == 30, "30 deliveries")
    time.sleep(0.5)
    assert sorted(pendo.names()) == sorted(f"Server Event {index}" for index in range(30))
    assert set(pendo.secrets) == {PENDO_SECRET}
    first = next(body for body in pendo.received if body["event"] == "Server Event 4")
    assert first == {
        "type": "track",
        "event": "Server Event 4",
        "visitorId": "user-1",
        "accountId": "acct-1",
        "timestamp": RECENT_MS,
        "properties": {"i": 4},
        "context": {"ip": "203.0.113.9", "url": "https://x.example/p", "title": "P"},
    }
    metrics = relay.metrics()
    assert (metrics["received"], metrics["duplicates"], metrics["delivered"], metrics["pending"]) == (30, 5, 30, 0)


@pytest.mark.parametrize("outage", ["500", "429"])
def test_an_outage_then_recovery_delivers_the_backlog(relay: Relay, pendo: FakePendoTrack, outage: str) -> None:
    pendo.mode = outage
    for index in range(8):
        relay.post("/v1/track", track(index))
    wait_for(lambda: pendo.refused >= 8, "refusals")
    wait_for(lambda: relay.destination()["state"] != "ok", "Pendo's outage to show in /healthz")
    # Pendo failing is not the relay failing: a load balancer or monitor reading the status keeps it in service.
    assert relay.health()[0] == 200
    assert relay.get("/readyz") == (200, {"status": "ready"})
    pendo.mode = "ok"
    wait_for(lambda: len(pendo.received) == 8, "the backlog", timeout=30)
    time.sleep(0.5)
    assert sorted(pendo.names()) == sorted(f"Server Event {index}" for index in range(8))
    assert relay.metrics()["retried"] >= 8


@pytest.mark.parametrize("status", ["401", "404"])
def test_a_setup_problem_holds_events_and_shows_in_healthz_instead_of_dead_lettering_them(
    relay: Relay, pendo: FakePendoTrack, status: str
) -> None:
    pendo.mode = status
    for index in range(3):
        relay.post("/v1/track", track(index))
    wait_for(lambda: relay.destination()["state"] == "failing", "the problem to show")
    answered, health = relay.get("/healthz")
    assert (answered, health["status"]) == (200, "ok")
    assert health["problems"]["destination track"].startswith(f"HTTP {status} from {pendo.url}: ")
    track_state = health["destinations"]["track"]
    assert track_state["problem"] == health["problems"]["destination track"]
    assert (health["pending"], track_state["pending"]) == (3, 3)
    assert 0 < track_state["oldest_pending_seconds"] < 60
    assert relay.metrics()["dead_lettered"] == 0
    pendo.mode = "ok"
    wait_for(lambda: len(pendo.received) == 3, "delivery once the setting is fixed", timeout=30)
    wait_for(relay.quiet, "healthz to recover")
    assert_recovered(relay.destination())


def test_rejected_events_go_to_the_dead_letters_with_the_reason(relay: Relay, pendo: FakePendoTrack) -> None:
    pendo.mode = "400"
    relay.post("/v1/track", track(1))
    wait_for(lambda: relay.metrics()["dead_lettered"] == 1, "a dead letter")
    assert relay.metrics()["dead_letters"] == [{"messageId": "msg-1", "status": 400, "reason": "not accepted"}]


def test_killing_and_restarting_mid_stream_loses_and_duplicates_nothing(relay: Relay, pendo: FakePendoTrack) -> None:
    for index in range(5):
        relay.post("/v1/track", track(index))
    wait_for(lambda: len(pendo.received) == 5, "the first five")
    pendo.mode = "hang"
    relay.post("/v1/batch", {"batch": [track(index) for index in range(5, 25)]})
    time.sleep(0.5)
    relay.kill()
    pendo.mode = "ok"
    relay.start()
    wait_for(lambda: len(pendo.received) == 25, "all 25 after the restart", timeout=30)
    time.sleep(1)
    assert sorted(pendo.names()) == sorted(f"Server Event {index}" for index in range(25))


@pytest.mark.parametrize(
    ("document", "kwargs", "status", "detail"),
    [
        (track(1), {"secret": "wrong"}, 401, "missing or wrong credentials"),
        (b"{not json", {}, 400, "body is not JSON"),
        ({"type": "identify", "userId": "u"}, {}, 422, "type 'identify' is not track"),
        ({"type": "track", "event": "No Visitor"}, {}, 422, "neither userId nor anonymousId is set"),
        (
            {"type": "track", "event": "Bad Time", "userId": "u", "timestamp": "yesterday"},
            {},
            422,
            "is not an ISO 8601",
        ),
        (b"x" * (600 * 1024), {}, 413, "body over 512000 bytes"),
        (track(1, timestamp="2020-01-01T00:00:00Z"), {}, 422, "more than 7 days old; Pendo does not process"),
    ],
    ids=["wrong secret", "not JSON", "not track", "no visitor", "bad time", "too large", "too old"],
)
def test_bad_input_and_wrong_secrets_are_refused(  # noqa: PLR0917  (pytest passes parameters positionally)
    relay: Relay, pendo: FakePendoTrack, document: Any, kwargs: dict[str, Any], status: int, detail: str
) -> None:
    answered, body = relay.post("/v1/track", document, **kwargs)
    assert answered == status
    assert detail in json.dumps(body)
    assert relay.metrics()["received"] == 0


def test_the_relay_follows_the_configs_subscription_and_visitor_rule(tmp_path: Path, pendo: FakePendoTrack) -> None:
    config = (
        '[pendo]\napi_key = "k-1"\n[on_load]\nvisitor_id = "user_id"\n'
        '[webhook]\nsubscribe = \'type = "track" and event != "Heartbeat"\'\n'
    )
    relay = Relay(tmp_path, pendo.url, config).start()
    try:
        batch = [track(1), track(2, event="Heartbeat"), track(3, userId=None, anonymousId="anon-3")]
        status, result = relay.post("/v1/batch", {"batch": batch})
        assert (status, result["accepted"], result["skipped"]) == (200, 1, 1)
        assert result["rejected"] == [
            {"index": 2, "reason": "userId is not set ([on_load] visitor_id = 'user_id'); Pendo needs a visitor"}
        ]
        wait_for(lambda: pendo.names() == ["Server Event 1"], "the one selected event")
        time.sleep(0.5)
        assert pendo.names() == ["Server Event 1"]
    finally:
        relay.stop()


def test_segments_own_node_library_can_send_to_the_relay(relay: Relay, pendo: FakePendoTrack) -> None:
    calls: list[list[Any]] = []
    for index in range(12):
        message: dict[str, Any] = {
            "event": f"Node Event {index}",
            "properties": {"i": index},
            "timestamp": RECENT,
        }
        if index % 2:
            message["userId"] = f"node-user-{index}"
            message["context"] = {"groupId": "acct-context"}
        else:
            message["anonymousId"] = f"node-anon-{index}"
            message["properties"]["groupId"] = "acct-properties"
        calls.append(["track", message])
        if index == 7:
            calls.append(["identify", {"userId": "node-user-7", "traits": {"plan": "pro"}}])
            calls.append(["page", {"userId": "node-user-7", "name": "Home"}])
    # The write key is what the library authenticates with (HTTP Basic): here, the relay's shared secret.
    report = run_node_script(
        "segment_node_client.cjs",
        {"host": f"http://127.0.0.1:{relay.port}", "writeKey": SHARED_SECRET, "calls": calls},
    )
    assert report["errors"] == []
    assert report["statuses"] and set(report["statuses"]) == {200}
    wait_for(lambda: len(pendo.received) == 12, "the 12 track events")
    time.sleep(0.5)
    by_name = {body["event"]: body for body in pendo.received}
    assert sorted(by_name) == sorted(f"Node Event {index}" for index in range(12))
    assert by_name["Node Event 1"]["visitorId"] == "node-user-1"
    assert by_name["Node Event 1"]["accountId"] == "acct-context"
    assert by_name["Node Event 2"]["visitorId"] == "_PENDO_T_node-anon-2"
    assert by_name["Node Event 2"]["accountId"] == "acct-properties"
    assert {body["timestamp"] for body in pendo.received} == {RECENT_MS}
    assert relay.metrics()["received"] == 12


def test_gzipped_bodies_are_accepted_within_the_same_limit(relay: Relay, pendo: FakePendoTrack) -> None:
    batch = json.dumps({"batch": [track(index) for index in range(3)]}).encode()
    assert relay.post("/v1/batch", gzip.compress(batch), encoding="gzip") == (
        200,
        {"accepted": 3, "duplicates": 0, "skipped": 0, "rejected": []},
    )
    wait_for(lambda: len(pendo.received) == 3, "the gzipped batch")
    bomb = gzip.compress(b'{"batch": [' + b" " * (50 * 1024 * 1024) + b"]}")
    status, body = relay.post("/v1/batch", bomb, encoding="gzip")
    assert (status, body) == (413, {"error": "body over 512000 bytes once decompressed"})
    assert relay.post("/v1/batch", b"not gzip", encoding="gzip")[0] == 400
    assert relay.post("/v1/batch", batch, encoding="br")[0] == 415


def test_segment_signatures_are_verified(relay: Relay, pendo: FakePendoTrack) -> None:
    assert relay.post("/", track(1), sign=True)[0] == 200
    assert relay.post("/", track(2), sign=True, secret="forged")[0] == 401
    wait_for(lambda: pendo.names() == ["Server Event 1"], "the signed event")


def test_anonymous_visitors_use_pendos_prefix_and_group_falls_back_to_properties() -> None:
    body = track_body(
        {
            "type": "track",
            "event": "E",
            "anonymousId": "a-1",
            "properties": {"groupId": "g-9"},
            "timestamp": "2026-11-28T10:00:00+01:00",
        }
    )
    assert (body["visitorId"], body["accountId"], body["timestamp"]) == ("_PENDO_T_a-1", "g-9", 1795856400000)
    with pytest.raises(RejectedEvent, match="has no time zone"):
        track_body({"type": "track", "event": "E", "userId": "u", "timestamp": "2026-11-28T10:00:00"})


def test_the_outbox_keeps_only_what_it_still_needs(new_outbox: Callable[[], Outbox]) -> None:
    outbox = new_outbox()
    old, recent = RECENT_MS - 9 * DAY_MS, RECENT_MS
    names = [("old-delivered", old), ("old-pending", old), ("old-dead", old), ("new", recent)]
    assert (
        outbox.add_many([NewEvent(name, "track", json.dumps({"event": name}), time) for name, time in names])
        == [True] * 4
    )
    claimed = {item.message_id for item in outbox.claim("track", 10, 60)}
    assert claimed == {name for name, _ in names}
    assert outbox.claim("track", 10, 60) == [], "leased events are nobody else's"
    outbox.settle([Delivered("old-delivered"), Delivered("new"), DeadLetter("old-dead", 400, "no")])
    outbox.settle([RetryLater("old-pending", 0, "HTTP 500")])
    bodies = dict(table_rows(outbox, "SELECT message_id, body FROM outbox"))
    assert bodies["old-delivered"] == bodies["new"] == bodies["old-dead"] == ""
    assert outbox.prune(RECENT_MS - 8 * DAY_MS, 1) == 1
    assert outbox.prune(RECENT_MS - 8 * DAY_MS, 100) == 1
    remaining = {row[0] for row in table_rows(outbox, "SELECT message_id FROM outbox")}
    assert remaining == {"old-pending", "new"}
    assert outbox.add_many([NewEvent("new", "track", "{}", recent)]) == [False], "a remembered messageId is a duplicate"
    assert outbox.dead_letters(10) == [{"messageId": "old-dead", "status": 400, "reason": "no"}]
    assert outbox.stats() == {
        "received": 4,
        "duplicates": 1,
        "delivered": 2,
        "retried": 1,
        "dead_lettered": 1,
        "pending": 1,
    }
    assert [item.attempts for item in outbox.claim("track", 10, 60)] == [1]


def test_claims_by_key_take_every_waiting_entry_of_a_key_in_acceptance_order(
    new_outbox: Callable[[], Outbox],
) -> None:
    outbox = new_outbox()
    where = "metadata/account/agent"

    def entry(name: str, key: str | None) -> NewEvent:
        return NewEvent(name, where, json.dumps({"n": name}), RECENT_MS, order_key=key)

    outbox.add_many([entry("a1", "A"), entry("a2", "A")])
    outbox.add_many([entry("b1", "B")])
    first = outbox.claim(where, 1, 60, by_key=True)
    assert [item.message_id for item in first] == ["a1", "a2"], "the longest-due key, whole, in acceptance order"
    assert first[0].sequence < first[1].sequence and {item.order_key for item in first} == {"A"}
    outbox.settle([RetryLater("a1", 60, "HTTP 500"), Delivered("a2")])
    outbox.add_many([entry("a3", "A"), entry("loose", None)])
    second = outbox.claim(where, 10, 60, by_key=True)
    # a1 waits for its retry, yet comes with a3: the newer value is never sent without the older one before it.
    assert sorted(item.message_id for item in second) == ["a1", "a3", "b1", "loose"]
    by_id = {item.message_id: item for item in second}
    assert by_id["a1"].sequence < by_id["a3"].sequence
    assert by_id["a1"].attempts == 1
    assert outbox.claim(where, 10, 60, by_key=True) == [], "leased entries are nobody else's"


def test_the_due_query_reads_an_index_in_order_and_never_sorts(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    outbox.add_many([NewEvent(f"m-{i}", "track", "{}", RECENT_MS) for i in range(2000)])
    outbox._db.execute("ANALYZE")
    plan = " | ".join(row[3] for row in outbox._db.execute(f"EXPLAIN QUERY PLAN {DUE_QUERY}", ("track", 0, 10)))
    assert "USING INDEX outbox_due_by_destination" in plan
    assert "TEMP B-TREE" not in plan, plan
    outbox.close()


def test_leases_of_a_dead_process_are_due_again_at_once_and_a_second_relay_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = SqliteOutbox(path)
    outbox.add_many([NewEvent("m", "track", "{}", RECENT_MS)])
    assert len(outbox.claim("track", 10, 3600)) == 1
    with pytest.raises(StorageError, match="another relay is using it"):
        SqliteOutbox(path)
    outbox.close()
    reopened = SqliteOutbox(path)
    assert [item.message_id for item in reopened.claim("track", 10, 60)] == ["m"]
    reopened.close()


def test_an_event_that_aged_past_seven_days_is_dead_lettered_not_sent(tmp_path: Path, pendo: FakePendoTrack) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    aged = json.dumps({"type": "track", "event": "Aged", "timestamp": RECENT_MS - 8 * DAY_MS})
    fresh = json.dumps({"type": "track", "event": "Fresh", "timestamp": RECENT_MS})
    outbox.add_many(
        [NewEvent("aged", "track", aged, RECENT_MS - 8 * DAY_MS), NewEvent("fresh", "track", fresh, RECENT_MS)]
    )
    outbox.close()
    relay = Relay(tmp_path, pendo.url).start()
    try:
        wait_for(lambda: relay.metrics()["pending"] == 0, "both settled")
        assert pendo.names() == ["Fresh"]
        assert relay.metrics()["dead_letters"] == [
            {
                "messageId": "aged",
                "status": 0,
                "reason": "not delivered within 7 days: the timestamp is more than 7 days old; "
                "Pendo does not process older track events",
            }
        ]
    finally:
        relay.stop()
