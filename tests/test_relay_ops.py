"""Operating the relay: what senders get wrong stays out of the log, health probes, and Segment's single-call routes.

Every test runs a real relay process over HTTP (raw sockets where a sender misbehaves) against local fakes of
Pendo's APIs; Segment's own Node library sends where it fits.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.errors import OutboxUnavailable
from generator.relay.audience_store import MembershipOutcome
from generator.relay.late_outbox import LateOutbox
from generator.relay.outbox import Delivered, NewEvent, Outbox, SqliteOutbox
from tests.support.fake_pendo_metadata import FakePendoMetadata, fake_pendo_metadata
from tests.support.fake_pendo_track import FakePendoTrack, fake_pendo_track
from tests.support.node_script import run_node_script
from tests.support.relay_process import (
    BASIC,
    RECENT,
    RECENT_MS,
    SHARED_SECRET,
    Relay,
    assert_recovered,
    track,
    wait_for,
)

METADATA_CONFIG = (
    '[pendo]\napi_key = "k-1"\n[metadata]\nwindow_seconds = 0.2\ncreate = true\n'
    '[metadata.visitor.agent]\nemail = { "@path" = "$.traits.email" }\n'
    '[metadata.account.agent]\nname = { "@path" = "$.traits.name" }\n'
)


@pytest.fixture
def pendo() -> Iterator[FakePendoTrack]:
    with fake_pendo_track() as fake:
        yield fake


@pytest.fixture
def metadata() -> Iterator[FakePendoMetadata]:
    with fake_pendo_metadata() as fake:
        yield fake


def head(path: str = "/v1/track", *lines: str) -> bytes:
    return (
        "\r\n".join([f"POST {path} HTTP/1.1", "Host: relay", f"Authorization: {BASIC}", *lines]) + "\r\n\r\n"
    ).encode("latin-1")


def drop_mid_body(relay: Relay) -> None:
    """Announce 5,000 bytes, send 10, hang up."""
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as connection:
        connection.sendall(head("/v1/track", "Content-Length: 5000") + b'{"type":"t')
    time.sleep(0.02)


def log_lines(relay: Relay, text: str) -> list[str]:
    return [line for line in relay.log.read_text(errors="replace").splitlines() if text in line]


def test_a_sender_that_drops_mid_body_is_one_short_counted_line_never_a_traceback(
    tmp_path: Path, pendo: FakePendoTrack
) -> None:
    relay = Relay(tmp_path, pendo.url).start()
    try:
        for _ in range(40):
            drop_mid_body(relay)
        wait_for(lambda: relay.metrics()["clients"]["disconnected"] == 40, "every drop counted")
        assert relay.post("/v1/track", track(1))[0] == 200, "the relay takes events as before"
        wait_for(lambda: pendo.names() == ["Server Event 1"], "the event after the drops")
        log = relay.log.read_text()
        assert "Traceback" not in log
        assert "ClientDisconnect" not in log
        lines = log_lines(relay, "closed its connection before its body was complete")
        assert len(lines) == 1, lines  # at most one a minute
        assert len(lines[0]) < 200
        assert relay.get_text("/metrics?format=prometheus")[0] == 200
        text = relay.get_text("/metrics?format=prometheus")[1]
        assert 'relay_client_errors_total{kind="disconnected"} 40' in text.splitlines()
        assert relay.metrics()["received"] == 1
    finally:
        relay.stop()


# Requests anyone can send, each answered (or the connection closed) without a traceback.
HOSTILE: list[tuple[str, bytes]] = [
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 50 + b"\r\n\r\n"),
    ("bad request line", b"GET\r\n\r\n"),
    ("bad content-length", head("/v1/track", "Content-Length: abc")),
    ("two content-lengths", head("/v1/track", "Content-Length: 5", "Content-Length: 6") + b"hello!"),
    ("negative content-length", head("/v1/track", "Content-Length: -5")),
    ("bad chunk", head("/v1/track", "Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunked and length", head("/v1/track", "Transfer-Encoding: chunked", "Content-Length: 3") + b"0\r\n\r\n"),
    ("header without colon", head("/v1/track", "NoColonHere") + b"{}"),
    ("non-latin header", head("/v1/track", "Content-Type: \xff\xfe", "Content-Length: 2") + b"{}"),
    ("websocket upgrade", head("/v1/track", "Connection: Upgrade", "Upgrade: websocket", "Content-Length: 0")),
    ("h2c upgrade", head("/v1/track", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "Content-Length: 0")),
    ("invalid gzip", head("/v1/track", "Content-Encoding: gzip", "Content-Length: 8") + b"not gzip"),
    ("truncated gzip", head("/v1/track", "Content-Encoding: gzip", "Content-Length: 12") + gzip.compress(b"{}")[:12]),
    ("odd encoding", head("/v1/track", "Content-Encoding: \xe9\xe9", "Content-Length: 2") + b"{}"),
    ("not utf-8", head("/v1/track", "Content-Length: 4") + b"\xff\xfe\xfd\xfc"),
    ("empty body", head("/v1/track", "Content-Length: 0")),
    ("json scalar", head("/v1/identify", "Content-Length: 4") + b"null"),
    ("batch at a single route", head("/v1/group", "Content-Length: 12") + b'{"batch":[]}'),
    ("unknown method", b"BREW /v1/track HTTP/1.1\r\nHost: r\r\nContent-Length: 0\r\n\r\n"),
    ("get intake", b"GET /v1/track HTTP/1.1\r\nHost: r\r\n\r\n"),
    (
        "bad query",
        b"GET /metrics?format=%ff%fe&&==& HTTP/1.1\r\nHost: r\r\nAuthorization: " + BASIC.encode() + b"\r\n\r\n",
    ),
    ("bad path", b"GET /%ff%00/../.. HTTP/1.1\r\nHost: r\r\n\r\n"),
    ("huge header", b"GET /livez HTTP/1.1\r\nHost: r\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
    ("http/1.0", b"POST /v1/track HTTP/1.0\r\nAuthorization: " + BASIC.encode() + b"\r\nContent-Length: 2\r\n\r\n{}"),
    ("http/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
]


def test_nothing_a_sender_can_send_gives_a_traceback_and_each_kind_is_logged_at_most_once(
    tmp_path: Path, pendo: FakePendoTrack
) -> None:
    relay = Relay(tmp_path, pendo.url, options=("--client-timeout", "1")).start()
    try:
        for _ in range(3):
            for name, request in HOSTILE:
                try:
                    answer = relay.raw(request, wait=5)
                except OSError:
                    answer = b""  # the relay may close the connection while the sender is still writing
                assert answer == b"" or answer.startswith(b"HTTP/1."), (name, answer[:200])
                assert not answer.startswith(b"HTTP/1.1 500"), (name, answer[:300])
        # A body that never completes, and headers that never do.
        slow = head("/v1/track", "Content-Length: 100") + b"{"
        assert relay.raw(slow, wait=10).startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as silent:
            silent.sendall(b"POST /v1/track HTTP/1.1\r\nHost: r\r\n")
            assert silent.recv(100) == b""
        assert relay.post("/v1/track", track(1))[0] == 200
        wait_for(lambda: pendo.names() == ["Server Event 1"], "a good event after all that")
        clients = relay.metrics()["clients"]
        assert clients["malformed"] >= 3 * 5, clients
        assert clients["upgrade"] >= 3, clients
        assert clients["slow_body"] == 1 and clients["slow_headers"] >= 1, clients
        log = relay.log.read_text(errors="replace")
        assert "Traceback" not in log
        assert "Exception in ASGI application" not in log
        assert len(log_lines(relay, "was not valid HTTP/1.1")) == 1
        assert len(log_lines(relay, "asked to upgrade the connection")) == 1
        assert log_lines(relay, "Invalid HTTP request received") == []
        assert log_lines(relay, "WebSocket library") == []
        assert relay.get("/livez") == (200, {"status": "alive"})
    finally:
        relay.stop()


# --- health probes ----------------------------------------------------------------------------------------------


def test_livez_readyz_and_healthz_answer_for_the_relay_not_for_pendo(tmp_path: Path, pendo: FakePendoTrack) -> None:
    relay = Relay(tmp_path, pendo.url, options=("--private-details",)).start()
    try:
        assert relay.get("/livez", secret=None) == (200, {"status": "alive"})
        assert relay.get("/readyz", secret=None) == (200, {"status": "ready"})
        assert relay.get("/healthz", secret=None) == (200, {"status": "ok"})
        pendo.mode = "500"
        relay.post("/v1/batch", {"batch": [track(index) for index in range(5)]})
        wait_for(lambda: relay.destination().get("state") == "failing", "Pendo's outage in the details")
        status, health = relay.health()
        assert (status, health["status"], health["ready"]) == (200, "ok", True)
        track_state = health["destinations"]["track"]
        assert track_state["problem"].startswith(f"HTTP 500 from {pendo.url}")
        assert track_state["pending"] == 5
        assert track_state["oldest_pending_seconds"] >= 0
        assert relay.get("/readyz", secret=None) == (200, {"status": "ready"})
        assert relay.get("/livez", secret=None) == (200, {"status": "alive"})
        assert relay.get("/healthz", secret=None) == (200, {"status": "ok"}), "details stay private"
        pendo.mode = "ok"
        wait_for(relay.quiet, "Pendo's recovery")
        assert_recovered(relay.destination())
        status, text = relay.get_text("/metrics?format=prometheus")
        assert "relay_ready 1" in text.splitlines()
    finally:
        relay.stop()


# --- Segment's single-call routes -------------------------------------------------------------------------------


def test_single_call_routes_take_one_call_each_as_segments_http_api_does(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = Relay(tmp_path, pendo.url, METADATA_CONFIG, options=("--pendo-metadata-url", metadata.base_url)).start()
    try:
        # As Segment's docs show them with curl: no type (the route says it).
        identify = {"userId": "u-1", "traits": {"email": "u1@x.example"}, "timestamp": RECENT, "messageId": "i-1"}
        group = {"userId": "u-1", "groupId": "a-1", "traits": {"name": "Acme"}, "timestamp": RECENT}
        assert relay.post("/v1/identify", identify) == (
            200,
            {"accepted": 1, "duplicates": 0, "skipped": 0, "rejected": []},
        )
        assert relay.post("/v1/identify", identify)[1]["duplicates"] == 1
        assert relay.post("/v1/group", {**group, "type": "group"})[1]["accepted"] == 1
        track_call = {"userId": "u-1", "event": "Single", "timestamp": RECENT}
        assert relay.post("/v1/track", track_call)[1]["accepted"] == 1
        for call, body in [
            ("page", {"userId": "u-1", "name": "Home"}),
            ("screen", {"userId": "u-1", "name": "Settings"}),
            ("alias", {"userId": "u-1", "previousId": "anon-1"}),
        ]:
            answered = relay.post(f"/v1/{call}", body)
            assert answered == (
                200,
                {"accepted": 0, "duplicates": 0, "skipped": 0, "rejected": [], "not_forwarded": 1},
            ), call
        status, answer = relay.post("/v1/identify", {**identify, "type": "track"})
        assert (status, answer["error"]) == (400, "/v1/identify takes identify calls, and this one's type is 'track'")
        status, answer = relay.post("/v1/group", {"batch": [group]})
        assert status == 400 and "send batches to /v1/batch" in answer["error"]
        assert relay.post("/v1/page", b"[1, 2]")[0] == 400
        assert relay.post("/v1/alias", {"x": 1}, secret="wrong")[0] == 401
        wait_for(lambda: metadata.values("visitor", "u-1", "agent") == {"email": "u1@x.example"}, "the identify")
        wait_for(lambda: metadata.values("account", "a-1", "agent") == {"name": "Acme"}, "the group")
        wait_for(lambda: pendo.names() == ["Single"], "the track call")
        metrics = relay.metrics()
        assert metrics["not_forwarded"] == {"page": 1, "screen": 1, "alias": 1}
        status, text = relay.get_text("/metrics?format=prometheus")
        assert 'relay_not_forwarded_total{type="screen"} 1' in text.splitlines()
    finally:
        relay.stop()


def test_identify_and_group_routes_without_metadata_are_answered_as_in_a_batch(
    tmp_path: Path, pendo: FakePendoTrack
) -> None:
    relay = Relay(tmp_path, pendo.url).start()
    try:
        identify = {"userId": "u-1", "traits": {"email": "u1@x.example"}, "timestamp": RECENT}
        single = relay.post("/v1/identify", identify)
        batched = relay.post("/v1/batch", {"batch": [{**identify, "type": "identify"}]})
        assert single == batched
        assert single[0] == 422
        assert "only track events go to Pendo's Track Events API" in single[1]["rejected"][0]["reason"]
        assert relay.post("/v1/group", {"groupId": "a-1"})[0] == 422
    finally:
        relay.stop()


def test_segments_node_library_page_screen_and_alias_are_answered_and_counted_not_forwarded(
    tmp_path: Path, pendo: FakePendoTrack, metadata: FakePendoMetadata
) -> None:
    relay = Relay(tmp_path, pendo.url, METADATA_CONFIG, options=("--pendo-metadata-url", metadata.base_url)).start()
    try:
        calls: list[list[Any]] = [
            ["page", {"userId": "n-1", "name": "Home", "timestamp": RECENT}],
            ["screen", {"userId": "n-1", "name": "Settings", "timestamp": RECENT}],
            ["alias", {"userId": "n-1", "previousId": "anon-n-1"}],
            ["identify", {"userId": "n-1", "traits": {"email": "n1@x.example"}, "timestamp": RECENT}],
            ["group", {"userId": "n-1", "groupId": "acct-n", "traits": {"name": "Node Co"}, "timestamp": RECENT}],
            ["track", {"userId": "n-1", "event": "Node Track", "timestamp": RECENT}],
            ["page", {"userId": "n-1", "name": "Pricing", "timestamp": RECENT}],
        ]
        report = run_node_script(
            "segment_node_client.cjs",
            {"host": f"http://127.0.0.1:{relay.port}", "writeKey": SHARED_SECRET, "calls": calls},
        )
        assert report["errors"] == []
        assert report["statuses"] and set(report["statuses"]) == {200}
        wait_for(lambda: pendo.names() == ["Node Track"], "the track call")
        wait_for(lambda: metadata.values("account", "acct-n", "agent") == {"name": "Node Co"}, "the group")
        assert metadata.values("visitor", "n-1", "agent") == {"email": "n1@x.example"}
        assert relay.metrics()["not_forwarded"] == {"page": 2, "screen": 1, "alias": 1}
        assert json.loads(json.dumps(relay.metrics()["clients"])) == {
            "disconnected": 0,
            "malformed": 0,
            "slow_headers": 0,
            "slow_body": 0,
            "upgrade": 0,
            "over_capacity": 0,
        }
    finally:
        relay.stop()


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_livez_fails_when_a_task_stops_for_good_or_the_outbox_writer_is_stuck(tmp_path: Path) -> None:
    # In process, to stop a task and to stand for a write that never returns (a hung disk or connection).
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from generator.relay.app import STUCK_WRITE_SECONDS, RelaySettings, create_app
    from generator.relay.delivery import track_destination
    from generator.relay.outbox import SqliteOutbox

    settings = RelaySettings(SHARED_SECRET, [track_destination("http://127.0.0.1:9/data/track", "secret")])
    app = create_app(SqliteOutbox(tmp_path / "outbox.sqlite3"), settings)
    relay = next(
        route.endpoint.__self__  # type: ignore[attr-defined]  # the bound handler's relay
        for route in app.routes
        if isinstance(route, Route) and route.path == "/livez"
    )
    with TestClient(app) as client:
        assert client.get("/livez").json() == {"status": "alive"}
        # The writer thread blocked: the next round of writes (the deliverer's claim) waits behind it.
        release = threading.Event()
        assert client.portal is not None
        client.portal.start_task_soon(relay.committer.write, release.wait)
        committer = relay.committer
        wait_for(lambda: (committer.writing_since or time.monotonic()) < time.monotonic() - 1, "a stuck round", 10)
        committer.writing_since -= STUCK_WRITE_SECONDS  # five minutes on, as far as /livez can tell
        answer = client.get("/livez")
        assert (answer.status_code, answer.json()) == (
            503,
            {"status": "dead", "stopped": ["committer (one write has taken over 300s)"]},
        )
        assert client.get("/readyz").status_code == 503
        release.set()
        wait_for(lambda: client.get("/livez").status_code == 200, "the writer to be well again", 10)
        assert client.portal is not None
        client.portal.call(relay.tasks["pruner"].cancel)
        wait_for(lambda: client.get("/livez").status_code == 503, "the stopped pruner to show", timeout=10)
        assert client.get("/livez").json() == {"status": "dead", "stopped": ["pruner"]}
        assert client.get("/healthz").status_code == 503


def test_connections_over_the_limit_are_answered_503_counted_and_logged_once(
    tmp_path: Path, pendo: FakePendoTrack
) -> None:
    relay = Relay(tmp_path, pendo.url, options=("--client-timeout", "3")).start()
    held: list[socket.socket] = []
    try:
        # 1,000 requests whose bodies never come: each holds its place until the body deadline (6 s).
        for _ in range(1_000):
            connection = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            connection.sendall(head("/v1/track", "Content-Length: 100"))
            held.append(connection)
        over = [relay.raw(head("/v1/track", "Content-Length: 2") + b"{}", wait=10) for _ in range(5)]
        assert all(answer.startswith(b"HTTP/1.1 503") for answer in over), [answer[:60] for answer in over]
        assert relay.raw(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n").startswith(b"HTTP/1.1 503 ")
        # The orchestrator's probes still get through: the relay works, it is only busy.
        assert relay.get("/livez") == (200, {"status": "alive"})
        assert relay.get("/readyz?verbose=1") == (200, {"status": "ready"})
        for connection in held:
            connection.close()
        wait_for(lambda: relay.post("/v1/track", track(1))[0] == 200, "room again", timeout=30)
        clients = relay.metrics()["clients"]
        assert clients["over_capacity"] >= 5, clients
        assert len(log_lines(relay, "more connections than the relay serves at once")) == 1
        assert log_lines(relay, "Exceeded concurrency limit") == []
        assert "Traceback" not in relay.log.read_text()
    finally:
        for connection in held:
            connection.close()
        relay.stop()


# --- an outbox that opens late -----------------------------------------------------------------------------------


def test_an_outbox_opened_late_offers_everything_every_deliverer_uses(tmp_path: Path) -> None:
    """The wrapper a relay starts with when its disk is full: every Outbox method, the engine's and audiences' too."""
    wanted = {name for name in dir(Outbox) if not name.startswith("_")}
    assert wanted - set(dir(LateOutbox)) == set(), "a method the deliverers call that a late outbox lacks"
    full = True

    def opener() -> Outbox:
        if full:
            raise OutboxUnavailable(f"outbox {tmp_path}: the disk is full")
        return SqliteOutbox(tmp_path / "outbox.sqlite3")

    late = LateOutbox(opener, str(tmp_path))
    with pytest.raises(OutboxUnavailable, match="the disk is full"):
        late.claim("metadata/visitor/agent", 10, 60, by_key=True)
    with pytest.raises(OutboxUnavailable, match="the disk is full"):
        late.due_audiences()
    full = False
    assert late.try_open()
    try:
        membership = json.dumps({"audience": "vip", "visitor": "v1", "member": True})
        value = json.dumps({"recordId": "u1", "values": {"email": "a@x.example"}})
        late.add_many(
            [
                NewEvent("t-1", "track", "{}", RECENT_MS),
                NewEvent("m-1", "metadata/visitor/agent", value, RECENT_MS, order_key="u1"),
                NewEvent("m-2", "metadata/visitor/agent", value, RECENT_MS, order_key="u1"),
                NewEvent("a-1", "audiences", membership, RECENT_MS),
            ]
        )
        claimed = late.claim("metadata/visitor/agent", 1, 60, by_key=True)
        assert [(item.message_id, item.order_key) for item in claimed] == [("m-1", "u1"), ("m-2", "u1")]
        late.settle([Delivered(item.message_id) for item in claimed])
        assert late.due_audiences() == ["vip"]
        assert late.stored_segment("vip") is None
        assert late.begin_creation("vip", 30)
        assert late.record_segment("vip", "seg-1") == "seg-1"
        [item] = late.claim_memberships("vip", 10, 60)
        late.settle_memberships([MembershipOutcome(item, "done")])
        [row] = late.audience_rows()
        assert (row.audience, row.segment_id, row.added, row.pending) == ("vip", "seg-1", 1, 0)
        assert late.pending_by_destination().keys() == {"track"}
    finally:
        late.close()
