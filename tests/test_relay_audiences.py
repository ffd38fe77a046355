"""Engage audiences through the relay to Pendo Segments: real relay processes, a local fake of Pendo's segment API.

Every test ends the same way: the fake's segment holds exactly the visitors whose last membership call accepted
said true, whatever was thrown in on the way (batches, refusals, outages, SIGKILL, two relays on PostgreSQL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from generator.cli import main
from generator.config_loader import parse_config
from generator.webhook import webhook_document
from tests.support.fake_pendo_segments import FakePendoSegments, fake_pendo_segments
from tests.support.fake_pendo_track import FakePendoTrack, fake_pendo_track
from tests.support.outboxes import fresh_database
from tests.support.postgres import PostgresCluster
from tests.support.relay_process import RECENT, Relay, wait_for
from tests.support.segment_engine import run_segment_engine
from tests.test_relay_faults import fill, small_disk

CONFIG = '[pendo]\napi_key = "k-1"\n[audiences]\nmax_visitors = {max_visitors}\n{extra}'
MESSAGES = count()


def config(max_visitors: int = 1000, extra: str = "") -> str:
    return CONFIG.format(max_visitors=max_visitors, extra=extra)


def identify(key: str, user: str, member: bool) -> dict[str, Any]:
    """Engage's identify shape."""
    return {
        "type": "identify",
        "messageId": f"engage-{next(MESSAGES)}",
        "userId": user,
        "timestamp": RECENT,
        "traits": {key: member},
        "context": {"personas": {"computation_class": "audience", "computation_key": key, "computation_id": "a1"}},
    }


def entered(key: str, user: str, member: bool) -> dict[str, Any]:
    """Engage's track shape."""
    return {
        "type": "track",
        "event": "Audience Entered" if member else "Audience Exited",
        "messageId": f"engage-{next(MESSAGES)}",
        "userId": user,
        "timestamp": RECENT,
        "properties": {key: member},
        "context": {"personas": {"computation_class": "audience", "computation_key": key, "computation_id": "a1"}},
    }


class AudienceRelay(Relay):
    """A relay whose metadata/segment URL is the fake's; --db may be a PostgreSQL URL."""

    def __init__(self, workdir: Path, track: str, segments: str, text: str, db: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, track, text, options=("--pendo-metadata-url", segments))
        self.db_url = db

    def command(self) -> list[str]:
        command = super().command()
        if self.db_url is not None:
            command[command.index("--db") + 1] = self.db_url
        return command

    def send(self, events: list[dict[str, Any]]) -> None:
        status, answer = self.post("/v1/batch", {"batch": events})
        assert status == 200 and answer["accepted"] == len(events) and not answer["rejected"], answer


@pytest.fixture
def pendo() -> Iterator[FakePendoTrack]:
    with fake_pendo_track() as fake:
        yield fake


@pytest.fixture
def segments() -> Iterator[FakePendoSegments]:
    with fake_pendo_segments() as fake:
        yield fake


def start(tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments, text: str) -> AudienceRelay:
    relay = AudienceRelay(tmp_path, pendo.url, segments.base_url, text)
    relay.start()
    return relay


def settled(relay: Relay, audience: str) -> bool:
    counts = relay.metrics().get("audiences", {}).get(audience)
    return counts is not None and counts["pending"] == 0


def patched_visitors(segments: FakePendoSegments) -> list[tuple[set[str], set[str]]]:
    """Per PATCH answered: (added, removed) visitors."""
    with segments.lock:
        patches = list(segments.patches)
    return [
        (
            {v for op in operations if op["op"] == "add" for v in op["value"]},
            {v for op in operations if op["op"] == "remove" for v in op["value"]},
        )
        for _, operations, _ in patches
    ]


def test_enter_exit_and_reenter_within_a_batch_and_across_batches_end_as_the_last_call_said(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    segments.add_segment("seg-vip", "VIP", {"old-member", "stays"})
    relay = start(tmp_path, pendo, segments, config(extra='[audiences.segments]\nvip = "seg-vip"\n'))
    try:
        relay.send(
            [
                identify("vip", "u1", True),
                entered("vip", "u1", False),
                identify("vip", "u1", True),  # left and came back within the batch: inside
                entered("vip", "u2", True),
                identify("vip", "u2", False),  # came and left: outside
                entered("vip", "old-member", False),
            ]
        )
        wait_for(lambda: segments.members("seg-vip") == {"u1", "stays"}, "the first batch's memberships")
        relay.send([entered("vip", "u1", False), identify("vip", "u3", True)])
        relay.send([identify("vip", "u1", True), entered("vip", "u3", False), identify("vip", "u3", True)])
        wait_for(lambda: settled(relay, "vip"), "every membership written")
        assert segments.members("seg-vip") == {"u1", "u3", "stays"}
        for added, removed in patched_visitors(segments):
            assert not added & removed  # never a visitor both ways in one request
        assert segments.creations == []
        counts = relay.metrics()["audiences"]["vip"]
        assert counts["segment"] == "seg-vip" and counts["failed"] == 0 and counts["added"] >= 3
        prometheus = relay.get_text("/metrics?format=prometheus")[1]
        assert 'relay_audience_memberships_total{audience="vip",segment="seg-vip",outcome="added"}' in prometheus
    finally:
        relay.stop()


def test_an_engage_audience_through_segments_webhook_mapping_reaches_pendo(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    text = config(max_visitors=2, extra='relay_url = "https://relay.example.com"\n')
    events = [
        identify("trial_users", "a", True),
        entered("trial_users", "b", True),
        entered("trial_users", "c", True),
        entered("trial_users", "a", False),
        {"type": "track", "event": "Order Completed", "userId": "a", "timestamp": RECENT, "messageId": "o1"},
        identify("trial_users", "d", True),
        entered("trial_users", "a", True),
    ]
    [subscription] = webhook_document(parse_config_text(text))["subscriptions"]
    run = run_segment_engine(events, mapping=subscription["mapping"], subscribe=subscription["subscribe"])
    assert run.mapping_error is None and run.subscribe_error is None
    # With batching on, Segment's Send action posts the batch's mapped data as one JSON list.
    batch = [result["mapped"]["data"] for result in run.results if result["matches"]]
    assert len(batch) == 6
    relay = start(tmp_path, pendo, segments, text)
    try:
        status, answer = relay.post("/v1/batch", batch)
        assert (status, answer["accepted"]) == (200, 6), answer
        wait_for(lambda: settled(relay, "trial_users"), "every membership written")
        [segment_id] = segments.by_name("trial_users")
        assert segments.members(segment_id) - {"segment-pendo-placeholder"} == {"a", "b", "c", "d"}
        assert all(len(added | removed) <= 2 for added, removed in patched_visitors(segments))
        assert pendo.received == []  # audience calls go to segments only
    finally:
        relay.stop()


def parse_config_text(text: str) -> Any:
    import tomllib

    return parse_config(tomllib.loads(text))


def test_a_call_without_visitor_or_membership_is_refused_and_the_rest_go_on(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    segments.add_segment("seg-1", "VIP")
    relay = start(tmp_path, pendo, segments, config(extra='[audiences.segments]\nvip = "seg-1"\n'))
    try:
        no_visitor = {**identify("vip", "x", True), "userId": None}
        no_membership = {**entered("vip", "y", True), "properties": {}}
        status, answer = relay.post("/v1/batch", {"batch": [no_visitor, identify("vip", "ok", True), no_membership]})
        assert status == 200 and answer["accepted"] == 1
        assert [item["index"] for item in answer["rejected"]] == [0, 2]
        assert "userId is not set ([audiences] visitor_id = 'user_id')" in answer["rejected"][0]["reason"]
        assert answer["rejected"][1]["reason"].startswith("properties.vip is missing")
        status, answer = relay.post("/v1/track", no_membership)
        assert status == 422
        wait_for(lambda: segments.members("seg-1") == {"ok"}, "the good call written")
    finally:
        relay.stop()


def test_a_refused_operation_dead_letters_just_the_visitor_pendo_refuses(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments, capsys: pytest.CaptureFixture[str]
) -> None:
    segments.add_segment("seg-1", "VIP", {"leaving"})
    segments.refused_visitors = {"bad"}
    segments.busy = 2  # and Pendo is busy writing the segment at first
    relay = start(tmp_path, pendo, segments, config(extra='[audiences.segments]\nvip = "seg-1"\n'))
    try:
        relay.send([identify("vip", "good", True), identify("vip", "bad", True), entered("vip", "leaving", False)])
        wait_for(lambda: settled(relay, "vip"), "every membership settled")
        assert segments.members("seg-1") == {"good"}
        counts = relay.metrics()["audiences"]["vip"]
        assert (counts["added"], counts["removed"], counts["failed"]) == (1, 1, 1)
        letters = relay.metrics()["dead_letters"]
        assert [letter["messageId"] for letter in letters] == ["audience:vip:bad:v1"]
        assert "invalid visitor bad" in letters[0]["reason"]
        # A later call for the same visitor is a new try.
        segments.refused_visitors = set()
        relay.send([entered("vip", "bad", True)])
        wait_for(lambda: segments.members("seg-1") == {"good", "bad"}, "the later call written")
        wait_for(lambda: settled(relay, "vip"), "the later call settled")
        # What an operator sees, while the relay runs on the file.
        assert main(["audiences", "list", "--config", str(tmp_path / "pendo.toml"), "--db", str(relay.db)]) == 0
        header, line = capsys.readouterr().out.splitlines()
        assert header.split() == [
            "audience",
            "pendo",
            "segment",
            "added",
            "removed",
            "pending",
            "failed",
            "last",
            "error",
        ]
        assert line.split()[:6] == ["vip", "seg-1", "2", "1", "0", "1"] and "invalid visitor bad" in line
    finally:
        relay.stop()


def test_a_500_outage_holds_every_audience_then_delivery_recovers(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    segments.add_segment("seg-1", "VIP")
    segments.mode = "500"
    relay = start(tmp_path, pendo, segments, config(extra='[audiences.segments]\nvip = "seg-1"\n'))
    try:
        relay.send([identify("vip", f"u{index}", True) for index in range(30)])
        relay.send([identify("new_audience", "n1", True)])

        def outage_shown() -> bool:
            status, health = relay.health()
            # Pendo failing is not the relay failing: the status stays 200, the problem is in the details.
            return status == 200 and "HTTP 500" in health["problems"].get("destination audiences", "")

        wait_for(outage_shown, "the outage in /healthz")
        # The engine's brake holds every audience: one probe at a time, at growing intervals, not a flood.
        wait_for(lambda: relay.metrics()["destinations"]["audiences"]["brake"] != "closed", "the brake to open")
        before = segments.arrived
        time.sleep(2.0)
        assert segments.arrived - before <= 4
        relay.send([entered("vip", f"u{index}", False) for index in range(10)])
        segments.mode = "429"
        wait_for(lambda: "paused" in relay.health()[1]["problems"].get("destination audiences", ""), "the brake")
        segments.mode = "ok"
        wait_for(lambda: segments.members("seg-1") == {f"u{index}" for index in range(10, 30)}, "recovery", 60)
        wait_for(lambda: bool(segments.by_name("new_audience")), "the new audience's segment")
        wait_for(lambda: settled(relay, "new_audience") and settled(relay, "vip"), "every membership written")
        assert len(segments.by_name("new_audience")) == 1
        wait_for(relay.quiet, "healthy again")
    finally:
        relay.stop()


def test_a_refused_creation_is_retried_with_backoff_shown_in_healthz_then_done_once(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    segments.create_status = 400
    relay = start(tmp_path, pendo, segments, config())
    try:
        relay.send([identify("beta_users", "b1", True), entered("beta_users", "b2", True)])

        def refusal_shown() -> bool:
            status, health = relay.health()
            # Pendo's refusal is shown, and is not the relay's failure: the status stays 200.
            shown = "HTTP 400: segment name not accepted" in health["problems"].get("audience beta_users", "")
            return shown and status == 200

        wait_for(refusal_shown, "the refused creation in /healthz")
        before = segments.create_attempts
        time.sleep(2.0)
        assert segments.create_attempts - before <= 3  # backing off, not a loop of creations
        segments.create_status = None
        wait_for(lambda: settled(relay, "beta_users"), "the segment created and the memberships written", 90)
        [segment_id] = segments.by_name("beta_users")
        assert segments.creations == ["beta_users"]
        assert segments.members(segment_id) == {"segment-pendo-placeholder", "b1", "b2"}
        wait_for(lambda: "audience beta_users" not in relay.health()[1].get("problems", {}), "the problem cleared")
    finally:
        relay.stop()


def test_sigkill_mid_batch_loses_nothing_and_the_last_call_still_wins(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    segments.add_segment("seg-1", "VIP")
    segments.delay_seconds = 3.0  # applied at once, answered late: the relay dies without knowing
    relay = start(tmp_path, pendo, segments, config(max_visitors=50, extra='[audiences.segments]\nvip = "seg-1"\n'))
    relay.send([identify("vip", f"u{index}", True) for index in range(120)])
    wait_for(lambda: len(segments.patches) >= 1, "a PATCH under way")
    relay.kill()
    segments.delay_seconds = 0.0
    relay.start()
    try:
        relay.send([entered("vip", f"u{index}", False) for index in range(0, 120, 2)])
        wait_for(lambda: settled(relay, "vip"), "every membership written", 60)
        assert segments.members("seg-1") == {f"u{index}" for index in range(1, 120, 2)}
    finally:
        relay.stop()


@pytest.fixture
def url(postgres_cluster: PostgresCluster) -> str:
    return fresh_database(postgres_cluster)


def test_two_relays_on_postgresql_create_one_segment_and_the_last_call_accepted_wins_through_a_kill(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    segments.delay_seconds = 0.3  # so both relays are sending (and creating) at the same time
    text = config(max_visitors=20, extra='names = { shared_new = "Shared new audience" }\n')
    relays = [AudienceRelay(tmp_path / f"r{n}", pendo.url, segments.base_url, text, url) for n in range(2)]
    for relay in relays:
        relay.start()
    try:
        # The same unknown audience reaches both relays at once.
        barrier = threading.Barrier(2)
        users = [f"v{index}" for index in range(60)]

        def send_half(relay: AudienceRelay, half: int) -> None:
            barrier.wait()
            relay.send([identify("shared_new", user, True) for user in users[half::2]])

        threads = [threading.Thread(target=send_half, args=(relay, n)) for n, relay in enumerate(relays)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Recorded in the shared outbox before the kill below: a relay killed between Pendo's answer to a creation
        # and writing the id down leaves Pendo a second segment (the documented at-least-once window).
        wait_for(
            lambda: all(relay.metrics()["audiences"]["shared_new"]["segment"] for relay in relays), "the segment's id"
        )
        # Then calls that contradict each other, alternating relays: the order accepted is the order sent.
        expected = set(users)
        for round_ in range(6):
            relay = relays[round_ % 2]
            flips = users[round_ * 7 : round_ * 7 + 15]
            member = round_ % 2 == 1
            relay.send([entered("shared_new", user, member) for user in flips])
            expected = expected | set(flips) if member else expected - set(flips)
            if round_ == 3:
                relays[0].kill()
                relays[0].start()
        wait_for(lambda: all(settled(relay, "shared_new") for relay in relays), "every membership written", 90)
        [segment_id] = segments.by_name("Shared new audience")
        assert segments.creations == ["Shared new audience"]
        assert segments.members(segment_id) - {"segment-pendo-placeholder"} == expected
        assert {patch[0] for patch in segments.patches} == {segment_id}
        for relay in relays:
            assert relay.metrics()["audiences"]["shared_new"]["segment"] == segment_id
        assert main(["audiences", "list", "--config", str(tmp_path / "r0" / "pendo.toml"), "--db", url]) == 0
        [line] = capsys.readouterr().out.splitlines()[1:]
        assert line.split()[:2] == ["shared_new", segment_id] and line.split()[4:6] == ["0", "0"]
    finally:
        for relay in relays:
            relay.stop()


def test_a_relay_started_on_a_full_disk_becomes_ready_and_delivers_track_and_audiences(
    tmp_path: Path, pendo: FakePendoTrack, segments: FakePendoSegments
) -> None:
    segments.add_segment("seg-1", "VIP")
    with small_disk(tmp_path / "disk", "2m") as disk:
        filler = fill(disk)
        text = config(extra='[audiences.segments]\nvip = "seg-1"\n')
        relay = AudienceRelay(tmp_path, pendo.url, segments.base_url, text, db=str(disk / "outbox.sqlite3"))
        relay.start()
        try:
            assert relay.get("/readyz")[0] == 503
            assert relay.post("/v1/batch", {"batch": [identify("vip", "early", True)]})[0] == 503
            filler.unlink()
            wait_for(lambda: relay.get("/readyz") == (200, {"status": "ready"}), "ready once there is space")
            track = {"type": "track", "event": "Server Event", "userId": "u1", "timestamp": RECENT, "messageId": "t-1"}
            relay.send([identify("vip", "v1", True), entered("vip", "v2", True), track])
            wait_for(lambda: segments.members("seg-1") == {"v1", "v2"}, "the memberships written")
            wait_for(lambda: [event["event"] for event in pendo.received] == ["Server Event"], "the track event")
            wait_for(lambda: settled(relay, "vip"), "nothing pending")
            wait_for(relay.quiet, "healthz quiet")
        finally:
            relay.stop()
