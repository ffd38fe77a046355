"""Fault tests of the delivery engine: a destination-wide brake for every kind of Pendo outage, the rate limit.

A real relay process against local fakes of Pendo that fail on command: HTTP 500, hanging, refused connections,
429 with Retry-After. During a sustained outage a relay sends at most 2 requests/s to the destination after the
first 10 s; after recovery it drains at full speed within 5 s, every event exactly once.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.relay.engine import Brake, DeliverySettings, Reply, TokenBucket
from tests.support.fake_pendo_metadata import fake_pendo_metadata
from tests.support.fake_pendo_track import FakePendoTrack, fake_pendo_track
from tests.support.relay_process import RECENT, Relay, track, wait_for

OUTAGE_SECONDS = 20.0
SETTLING_SECONDS = 10.0  # the "after the first 10 s"
MAX_OUTAGE_RATE = 2.0  # requests/s per destination, on average, after that
EVENTS = 1000
# Above the default, so the drain after recovery is quick to watch; the rate limit has its own test.
FAST = ("--max-rate", "200")


def state_of(brake: Brake) -> str:
    return brake.state


def test_the_brake_opens_after_failures_in_a_row_probes_at_growing_capped_intervals_and_honours_retry_after() -> None:
    settings = DeliverySettings()
    brake = Brake(settings)
    now = 1000.0
    assert brake.failed(now, probe=False, throttled=False, retry_after=None) is None
    assert brake.failed(now, probe=False, throttled=False, retry_after=None) is None
    assert state_of(brake) == "closed" and brake.wait(now) == 0
    opened = brake.failed(now, probe=False, throttled=False, retry_after=None)
    assert opened is not None and 0.4 <= opened <= 0.55
    assert state_of(brake) == "open" and brake.wait(now) == pytest.approx(opened)
    intervals = []
    for _ in range(8):
        now = brake.reopens_at
        assert brake.wait(now) == 0 and brake.starting(now), "a probe"
        # One at a time: the next only once this one failed, or has hung for the longest interval.
        assert state_of(brake) == "probing" and brake.wait(now) == pytest.approx(settings.max_probe_seconds)
        intervals.append(brake.failed(now, probe=True, throttled=False, retry_after=None) or 0)
    assert intervals[0] < intervals[1] < min(intervals[2:]), intervals
    assert min(intervals[2:]) >= 0.8 * settings.max_probe_seconds, "doubling up to the cap, jittered"
    assert max(intervals) <= settings.max_probe_seconds * 1.1, intervals
    assert brake.failed(now, probe=False, throttled=True, retry_after=7.0) is not None
    assert brake.wait(now) > 6.99, "Retry-After is honoured even past the cap"
    assert brake.succeeded() and state_of(brake) == "closed" and brake.failures == 0
    throttled = Brake(settings)
    assert throttled.failed(now, probe=False, throttled=True, retry_after=None) is not None, "a 429 opens it at once"


def test_which_answers_count_against_a_destination() -> None:
    assert all(Reply(status).failed for status in (0, 500, 503, 429, 408, 425, 401, 403, 404))
    assert not any(Reply(status).failed for status in (200, 202, 400, 413, 422))
    assert Reply(429).throttled and Reply(503, retry_after="5").throttled and not Reply(503).throttled


def test_the_token_bucket_allows_its_rate_and_a_tenth_of_a_second_of_burst() -> None:
    bucket = TokenBucket(50)
    now = bucket.updated
    taken = 0
    while bucket.wait(now) == 0:
        bucket.take()
        taken += 1
    assert taken == 5
    assert bucket.wait(now) == pytest.approx(0.02)
    started, clock = 0, now
    for _ in range(1000):  # one simulated second in 1 ms steps
        clock += 0.001
        if bucket.wait(clock) == 0:
            bucket.take()
            started += 1
    assert 49 <= started <= 51


@pytest.fixture
def pendo() -> Iterator[FakePendoTrack]:
    with fake_pendo_track() as fake:
        yield fake


def start_outage(pendo: FakePendoTrack, kind: str) -> None:
    if kind == "refused":
        pendo.refuse_connections()
    else:
        pendo.mode = kind
        pendo.retry_after = "2"


def end_outage(pendo: FakePendoTrack, kind: str) -> None:
    if kind == "refused":
        pendo.accept_connections()
    pendo.mode = "ok"


def track_requests(relay: Relay) -> int:
    """Requests the relay has sent to the Track Events API (answered or not), by its own count."""
    count: int = relay.metrics()["destinations"]["track"]["requests"]
    return count


def delivered(pendo: FakePendoTrack) -> Counter[int]:
    with pendo.lock:
        return Counter(int(body["properties"]["i"]) for body in pendo.received)


@pytest.mark.parametrize("kind", ["500", "hang", "refused", "429"])
def test_an_outage_of_any_kind_brakes_to_a_probe_and_the_backlog_drains_once_within_seconds_of_recovery(
    tmp_path: Path, pendo: FakePendoTrack, kind: str
) -> None:
    relay = Relay(tmp_path, pendo.url, options=FAST).start()
    try:
        start_outage(pendo, kind)
        began = time.monotonic()
        for start in range(0, EVENTS, 500):
            assert relay.post("/v1/batch", {"batch": [track(i) for i in range(start, start + 500)]})[0] == 200
        time.sleep(SETTLING_SECONDS - (time.monotonic() - began))
        counted_from, requests_before = time.monotonic(), track_requests(relay)
        time.sleep(OUTAGE_SECONDS - SETTLING_SECONDS)
        requests = track_requests(relay) - requests_before
        seconds = time.monotonic() - counted_from
        assert requests <= MAX_OUTAGE_RATE * seconds, f"{requests} requests in {seconds:.1f}s of a {kind} outage"
        if kind != "refused":
            with pendo.lock:
                at_pendo = [arrived for arrived, _ in pendo.arrivals if arrived >= counted_from]
            assert len(at_pendo) <= MAX_OUTAGE_RATE * seconds, at_pendo
        if kind == "429":
            with pendo.lock:
                refusals = [arrived for arrived, answer in pendo.arrivals if answer == 429 and arrived >= counted_from]
            # Retry-After: 2 is honoured: no probe comes sooner (a little slack for the fake's own clock).
            assert all(later - earlier > 1.7 for earlier, later in itertools.pairwise(refusals)), refusals

        health = relay.health()[1]
        state = health["destinations"]["track"]
        assert state["brake"] in ("open", "probing"), state
        assert state["consecutive_failures"] >= 3
        assert state["paused"] is True
        if state["brake"] == "open":
            assert 0 <= state["next_probe_seconds"] <= 3.3 or kind == "429"
        _, prometheus = relay.get_text("/metrics?format=prometheus")
        assert 'relay_destination_brake_state{destination="track",state="closed"} 0' in prometheus
        assert relay.metrics()["pending"] == EVENTS - len(delivered(pendo))

        end_outage(pendo, kind)
        recovered = time.monotonic()
        wait_for(lambda: len(delivered(pendo)) > 0, "the first delivery after recovery", timeout=10)
        with pendo.lock:
            first = min(arrived for arrived, answer in pendo.arrivals if answer == 200)
        assert first - recovered <= 5.0, f"drain started {first - recovered:.1f}s after recovery"
        time.sleep(max(0.0, first + 3.0 - time.monotonic()))
        # Full speed: far more than a probe at a time (a 2-core machine shared with other work: a modest bound).
        assert len(delivered(pendo)) >= 100, len(delivered(pendo))
        wait_for(lambda: len(delivered(pendo)) >= EVENTS, "the whole backlog", timeout=60)
        wait_for(lambda: relay.metrics()["pending"] == 0, "nothing pending")
        assert delivered(pendo) == Counter(range(EVENTS)), "every event exactly once"
        assert relay.health()[1]["destinations"]["track"]["brake"] == "closed"
    finally:
        relay.stop()


def test_max_rate_keeps_each_destination_under_its_requests_per_second(tmp_path: Path, pendo: FakePendoTrack) -> None:
    rate, events = 20, 160
    relay = Relay(tmp_path, pendo.url, options=("--max-rate", str(rate), "--concurrency", "8")).start()
    try:
        pendo.mode = "429"  # held back until every event is in the outbox
        pendo.retry_after = "1"
        relay.post("/v1/batch", {"batch": [track(i) for i in range(events)]})
        pendo.mode = "ok"
        wait_for(lambda: len(pendo.received) == events, "every event", timeout=60)
        with pendo.lock:
            times = sorted(arrived for arrived, answer in pendo.arrivals if answer == 200)
        # Any 2-second span: two seconds' worth, plus the bucket's burst (2) and the fake's own jitter.
        busiest = max(sum(1 for other in times if start <= other < start + 2.0) for start in times)
        assert busiest <= 2 * rate + 6, busiest
        assert (times[-1] - times[0]) >= (events - 2 * rate) / rate * 0.9
        assert relay.metrics()["destinations"]["track"]["max_rate"] == rate
    finally:
        relay.stop()


METADATA_CONFIG = """[pendo]
api_key = "k-1"
[metadata]
window_seconds = 0.2
max_rows = 20
[metadata.visitor.agent]
email = { "@path" = "$.traits.email" }
"""


def identify(user: int, email: str) -> dict[str, Any]:
    return {"type": "identify", "messageId": f"id-{user}-{email}", "userId": f"u{user}", "traits": {"email": email}}


def test_the_metadata_destination_brakes_too_and_its_values_arrive_after_recovery(
    tmp_path: Path, pendo: FakePendoTrack
) -> None:
    with fake_pendo_metadata() as metadata:
        options = ("--pendo-metadata-url", metadata.base_url, *FAST)
        relay = Relay(tmp_path, pendo.url, METADATA_CONFIG, options=options).start()
        try:
            metadata.mode = "500"
            began = time.monotonic()
            batch = [{**identify(user, f"{user}@x.example"), "timestamp": RECENT} for user in range(200)]
            assert relay.post("/v1/batch", {"batch": batch})[0] == 200
            time.sleep(SETTLING_SECONDS - (time.monotonic() - began))
            counted_from = time.monotonic()
            time.sleep(OUTAGE_SECONDS - SETTLING_SECONDS)
            seconds = time.monotonic() - counted_from
            with metadata.lock:
                late = [request for request in metadata.requests if request.at >= counted_from]
            assert len(late) <= MAX_OUTAGE_RATE * seconds, len(late)
            state = relay.health()[1]["destinations"]["metadata/visitor/agent"]
            assert state["brake"] in ("open", "probing") and state["paused"], state
            metadata.mode = "ok"
            recovered = time.monotonic()
            wait_for(lambda: bool(metadata.values("visitor", "u0", "agent")), "the first value", timeout=10)
            wait_for(lambda: all(metadata.values("visitor", f"u{user}", "agent") for user in range(200)), "every value")
            with metadata.lock:
                first = min(request.at for request in metadata.requests if request.status == 200)
            assert first - recovered <= 5.0
            wait_for(lambda: relay.metrics()["pending"] == 0, "nothing pending")
            assert relay.metrics()["dead_lettered"] == 0
        finally:
            relay.stop()


def test_events_pendo_would_not_show_in_full_are_counted_and_logged_once_per_name_and_sent_unchanged(
    tmp_path: Path, pendo: FakePendoTrack
) -> None:
    big = {"note": "x" * 520}
    hidden = {"9lives": 1, "__secret__": 2, "has space": 3, "a" * 33: 4, "fine_name": 5}
    events = [
        *(track(i, event="Big", properties=big) for i in range(5)),
        *(track(i, event="Oddly Named", properties=hidden) for i in range(5, 8)),
        track(8, event="Small", properties={"ok": "y" * 400}),  # 410 bytes of JSON: shown
        track(9, event="Both", properties={**big, "9lives": 1}),
    ]
    relay = Relay(tmp_path, pendo.url).start()
    try:
        assert relay.post("/v1/batch", {"batch": events})[0] == 200
        wait_for(lambda: len(pendo.received) == len(events), "every event")
        counts = relay.metrics()["pendo_limits"]
        assert counts == {"properties_too_large": 6, "property_names_hidden": 4}
        _, prometheus = relay.get_text("/metrics?format=prometheus")
        assert 'relay_pendo_limit_events_total{kind="properties_too_large"} 6' in prometheus
        with pendo.lock:
            sent = {body["event"]: body["properties"] for body in pendo.received}
        assert sent["Big"] == big and sent["Oddly Named"] == hidden, "the data is sent as it is"
        log = relay.log.read_text()
        assert log.count("track event 'Big': its properties take 531 bytes of JSON") == 1, log
        hidden_line = "track event 'Oddly Named': Pendo will not show properties named '9lives', '__secret__', "
        assert log.count(hidden_line) == 1, log
        assert "'fine_name'" not in log and "'Small'" not in log
        assert log.count("track event 'Both'") == 2
    finally:
        relay.stop()
