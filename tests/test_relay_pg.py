"""The PostgreSQL outbox: what sharing one database between relays adds to the Outbox contract, and its errors."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from generator.cli import main
from generator.errors import StorageError
from generator.relay.outbox import Delivered, NewEvent, Released, RetryLater
from generator.relay.pg_outbox import APP_KEY, LIVE_OWNERS, SCHEMA_VERSION, PostgresOutbox, describe
from tests.support.outboxes import fresh_database
from tests.support.postgres import PORT, PostgresCluster
from tests.support.recording_pendo import Send, recording_pendo
from tests.support.relay_process import PENDO_SECRET, RECENT_MS, SHARED_SECRET, Relay, track, wait_for


def live_owners(url: str) -> set[int]:
    with psycopg.connect(url) as db:
        return {row[0] for row in db.execute(LIVE_OWNERS, {"app": APP_KEY})}


def events(count: int, prefix: str = "m") -> list[NewEvent]:
    return [NewEvent(f"{prefix}-{index}", "track", f'{{"i":{index}}}', RECENT_MS) for index in range(count)]


@pytest.fixture
def url(postgres_cluster: PostgresCluster) -> str:
    return fresh_database(postgres_cluster)


def test_relays_racing_for_claims_each_get_different_events_and_together_all(url: str) -> None:
    relays = [PostgresOutbox(url) for _ in range(3)]
    try:
        assert relays[0].add_many(events(3000)) == [True] * 3000
        claimed: list[list[str]] = [[] for _ in relays]

        def drain(position: int) -> None:
            while batch := relays[position].claim("track", 25, 60):
                claimed[position] += [item.message_id for item in batch]
                relays[position].settle([Delivered(item.message_id) for item in batch])

        threads = [threading.Thread(target=drain, args=(position,)) for position in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = Counter(message for messages in claimed for message in messages)
        assert set(everything.values()) == {1} and len(everything) == 3000
        assert all(messages for messages in claimed), "every relay got a share"
        assert relays[1].stats() == {
            "received": 3000,
            "duplicates": 0,
            "delivered": 3000,
            "retried": 0,
            "dead_lettered": 0,
            "pending": 0,
        }
    finally:
        for relay in relays:
            relay.close()


def test_a_key_another_relay_holds_is_not_claimed_until_it_settles_or_that_relay_dies(url: str) -> None:
    first, second = PostgresOutbox(url), PostgresOutbox(url)
    where = "metadata/visitor/agent"
    try:
        first.add_many([NewEvent("a1", where, "{}", RECENT_MS, order_key="A")])
        assert [item.message_id for item in first.claim(where, 10, 60, by_key=True)] == ["a1"]
        second.add_many(
            [NewEvent(name, where, "{}", RECENT_MS, order_key=key) for name, key in [("a2", "A"), ("b1", "B")]]
        )
        assert [item.message_id for item in second.claim(where, 10, 60, by_key=True)] == ["b1"], "A is held"
        first.settle([Delivered("a1")])
        assert [item.message_id for item in second.claim(where, 10, 60, by_key=True)] == ["a2"]
        first.add_many([NewEvent("a3", where, "{}", RECENT_MS, order_key="A")])
        second.close()  # a relay that dies: its leases (a2, b1) go back, and A is whole again for the others
        time.sleep(1.1)  # dead relays' leases are looked for at most once a second
        claimed = [item.message_id for item in first.claim(where, 10, 60, by_key=True)]
        assert sorted(claimed) == ["a2", "a3", "b1"] and claimed.index("a2") < claimed.index("a3")
    finally:
        first.close()
        second.close()


def test_a_messageid_is_accepted_once_whichever_relay_sees_it(url: str) -> None:
    first, second = PostgresOutbox(url), PostgresOutbox(url)
    try:
        assert first.add_many(events(3)) == [True] * 3
        assert second.add_many([*events(4), *events(1)]) == [False, False, False, True, False]
        assert first.stats()["received"] == 4 and second.stats()["duplicates"] == 4
    finally:
        first.close()
        second.close()


def test_a_dead_relays_leases_are_due_again_at_once_a_living_ones_are_not(url: str) -> None:
    living, dying, other = PostgresOutbox(url), PostgresOutbox(url), PostgresOutbox(url)
    try:
        living.add_many(events(4))
        assert len(living.claim("track", 2, 3600)) == 2
        assert len(dying.claim("track", 2, 3600)) == 2
        assert other.claim("track", 10, 3600) == []
        dying.close()  # what a SIGKILL does too: its connection closes, its owner lock is free
        wait_for(lambda: dying.owner not in live_owners(url), "the closed relay's session to end")
        time.sleep(1.1)  # dead relays are looked for at most once a second
        taken = other.claim("track", 10, 3600)
        assert len(taken) == 2
        assert other.claim("track", 10, 3600) == []
    finally:
        living.close()
        other.close()


def test_a_lease_that_ran_out_is_anyone_s_and_the_late_outcome_of_its_old_holder_is_ignored(url: str) -> None:
    slow, fast = PostgresOutbox(url), PostgresOutbox(url)
    try:
        slow.add_many(events(1))
        assert [item.message_id for item in slow.claim("track", 1, 0.2)] == ["m-0"]
        assert fast.claim("track", 1, 60) == []
        time.sleep(0.3)
        assert [item.message_id for item in fast.claim("track", 1, 60)] == ["m-0"]
        slow.settle([RetryLater("m-0", 0, "timeout"), Released("m-0")])
        assert fast.claim("track", 1, 60) == [], "the slow relay's outcome did not end the fast one's lease"
        fast.settle([Delivered("m-0")])
        slow.settle([Delivered("m-0")])
        assert fast.stats() | {"received": 0} == {
            "received": 0,
            "duplicates": 0,
            "delivered": 1,
            "retried": 0,
            "dead_lettered": 0,
            "pending": 0,
        }
    finally:
        slow.close()
        fast.close()


def test_relays_starting_together_create_the_schema_once_and_counters_survive_them(url: str) -> None:
    opened: list[PostgresOutbox] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresOutbox(url))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(opened) == 6
    for position, outbox in enumerate(opened):
        outbox.add_many(events(1, f"from-{position}"))
    for outbox in opened[1:]:
        outbox.close()
    survivor = opened[0]
    wait_for(lambda: live_owners(url) == {survivor.owner}, "the closed relays' sessions to end")
    later = PostgresOutbox(url)  # folds the counters of the relays that have gone
    try:
        assert later.stats()["received"] == survivor.stats()["received"] == 6
        with psycopg.connect(url) as db:
            assert db.execute("SELECT version FROM relay_schema_version").fetchall() == [(SCHEMA_VERSION,)]
            shards = {row[0] for row in db.execute("SELECT DISTINCT shard FROM counters")}
        assert shards == {0, survivor.owner}
    finally:
        survivor.close()
        later.close()


def test_a_schema_newer_than_the_relay_is_refused(url: str) -> None:
    PostgresOutbox(url).close()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("UPDATE relay_schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StorageError, match=f"schema is version {SCHEMA_VERSION + 1}, newer than this relay"):
        PostgresOutbox(url)


def test_any_messageid_and_any_reason_are_stored(url: str) -> None:
    outbox = PostgresOutbox(url)
    try:
        odd = "nul\x00inside ünïcode"
        assert outbox.add_many([NewEvent(odd, "track", "{}", RECENT_MS)]) == [True]
        assert [item.message_id for item in outbox.claim("track", 1, 60)] == [odd]
        outbox.settle([RetryLater(odd, 0, "Pendo said \x00\udcff")])
        from generator.relay.outbox import DeadLetter

        outbox.claim("track", 1, 60)
        outbox.settle([DeadLetter(odd, 400, "bad \x00 body")])
        assert outbox.dead_letters(5) == [{"messageId": odd, "status": 400, "reason": "bad \ufffd body"}]
    finally:
        outbox.close()


def test_a_lost_connection_is_a_storage_error_then_the_relay_reconnects_with_its_leases(url: str) -> None:
    outbox = PostgresOutbox(url)
    try:
        outbox.add_many(events(2))
        assert len(outbox.claim("track", 1, 3600)) == 1
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        owner = outbox.owner
        with pytest.raises(StorageError, match=r"outbox postgresql://.*: the connection to PostgreSQL failed"):
            outbox.claim("track", 10, 3600)
        assert outbox.owner == owner
        time.sleep(1.1)
        assert [item.message_id for item in outbox.claim("track", 10, 3600)] == ["m-1"]
        assert outbox.stats()["pending"] == 2
    finally:
        outbox.close()


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        (lambda c: f"postgresql://{c.user}@/nowhere?host={c.socket_dir}&port={PORT}", "the database does not exist"),
        (lambda c: f"postgresql://nobody@/postgres?host={c.socket_dir}&port={PORT}", "refused the user or password"),
        (lambda c: "postgresql://u:secret@host:port/db", "the URL is not usable"),
        (lambda c: "postgresql://u@/db?bogus=1", "the URL is not usable"),
    ],
    ids=["no database", "unknown user", "bad port", "bad option"],
)
def test_a_bad_url_or_refused_credentials_are_one_line_and_exit_3(  # noqa: PLR0917  (pytest passes parameters positionally)
    postgres_cluster: PostgresCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_url: object,
    message: str,
) -> None:
    config = tmp_path / "pendo.toml"
    config.write_text('[pendo]\napi_key = "k-1"\n')
    monkeypatch.setenv("PENDO_TRACK_EVENT_SECRET", PENDO_SECRET)
    monkeypatch.setenv("RELAY_SHARED_SECRET", SHARED_SECRET)
    db = make_url(postgres_cluster)  # type: ignore[operator]
    assert main(["relay", "--config", str(config), "--port", "0", "--db", db]) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: outbox postgresql://"), error
    assert message in error
    assert "secret" not in error


def test_a_url_is_shown_without_its_password() -> None:
    assert describe("postgresql://relay:hunter2@db.example:6432/events") == "postgresql://relay@db.example:6432/events"


# --- several relay processes on one database ---------------------------------------------------------------------


class SharingRelay(Relay):
    """A relay process on the shared outbox; its Pendo secret names it (and its restarts) in the fake's records."""

    def __init__(self, workdir: Path, pendo_url: str, url: str, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, pendo_url, options=("--concurrency", "8", "--max-rate", "5000"))
        self.url = url
        self.name = name
        self.generation = 0

    @property
    def secret(self) -> str:
        return f"{self.name}.{self.generation}"

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--db") + 1] = self.url
        return command

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "PENDO_TRACK_EVENT_SECRET": self.secret}

    def restart(self) -> None:
        self.generation += 1
        self.start()


def send_round_robin(relays: list[SharingRelay], batches: list[list[dict[str, object]]], stop: threading.Event) -> None:
    """Like a load balancer: each batch to the next relay, to another one while a relay does not answer 200."""
    turn = 0
    for batch in batches:
        while not stop.is_set():
            relay = relays[turn % len(relays)]
            turn += 1
            status, answer = relay.post("/v1/batch", {"batch": batch}, timeout=5)
            if status == 200 and answer["accepted"] + answer["duplicates"] == len(batch):
                break
            time.sleep(0.02)


def test_three_relays_share_twenty_thousand_events_through_sigkills_each_sent_by_one_at_a_time(
    tmp_path: Path, url: str
) -> None:
    total, per_batch, window = 20_000, 100, 5.0
    with recording_pendo() as pendo:
        relays = [SharingRelay(tmp_path / f"relay-{n}", pendo.url, url, f"relay-{n}") for n in range(3)]
        kills: dict[str, float] = {}  # secret of a killed process: when it was killed
        stop = threading.Event()
        try:
            for relay in relays:
                relay.start()
            batches = [[track(i) for i in range(start, start + per_batch)] for start in range(0, total, per_batch)]
            sender = threading.Thread(target=send_round_robin, args=(relays, batches, stop))
            sender.start()
            for victim in [relays[n % 3] for n in range(6)]:
                time.sleep(1.5)
                killed_secret = victim.secret
                victim.kill()
                kills[killed_secret] = time.monotonic()
                victim.restart()
            sender.join(timeout=60)
            assert not sender.is_alive(), "every batch acknowledged"
            wait_for(lambda: len(pendo.delivered()) == total, "every event at the fake", timeout=90)
            wait_for(lambda: relays[0].metrics()["pending"] == 0, "nothing pending", timeout=30)
            metrics = relays[0].metrics()
            for relay in relays:
                assert relay.quiet()
        finally:
            stop.set()
            for relay in relays:
                relay.stop()
        time.sleep(0.5)
        sends = list(pendo.sends)
    assert pendo.delivered() == set(range(total)), "nothing lost"
    assert (metrics["received"], metrics["delivered"], metrics["pending"]) == (total, total, 0)
    by_event: dict[int, list[Send]] = {}
    for send in sends:
        by_event.setdefault(send.index, []).append(send)
    duplicates = {index: found for index, found in by_event.items() if len(found) > 1}
    for index, found in duplicates.items():
        found.sort(key=lambda send: send.arrived)
        for earlier in found[:-1]:
            # The at-least-once window: the relay that sent it was killed before it recorded Pendo's answer.
            killed = kills.get(earlier.sender)
            assert killed is not None, (index, found)
            assert earlier.answered <= killed + 0.5 and killed - earlier.answered < window, (index, found, killed)
    for index, found in by_event.items():
        # In flight from the arrival until the answer (or until its relay was killed, whichever came first).
        spans = sorted((send.arrived, min(send.answered, kills.get(send.sender, send.answered))) for send in found)
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert second_start >= first_end, (index, found)
    assert {send.sender.split(".")[0] for send in sends} == {"relay-0", "relay-1", "relay-2"}, "all three delivered"
    assert any(not send.sender.endswith(".0") for send in sends), "restarted relays take their share again"
    assert len(duplicates) < total // 50, len(duplicates)


def test_a_database_outage_shows_in_healthz_refuses_intake_and_delivery_resumes_after(
    tmp_path: Path, url: str, postgres_cluster: PostgresCluster
) -> None:
    name = url.split("/")[3].split("?", maxsplit=1)[0]

    def allow_connections(allowed: bool) -> None:
        with psycopg.connect(postgres_cluster.dsn, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allowed).lower()}")
            if not allowed:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    with recording_pendo() as pendo:
        relay = SharingRelay(tmp_path / "relay", pendo.url, url, "relay").start()
        try:
            relay.post("/v1/batch", {"batch": [track(i) for i in range(5)]})
            wait_for(lambda: len(pendo.delivered()) == 5, "the first five")
            allow_connections(False)
            wait_for(lambda: relay.health()[0] == 503, "the outage to show in /healthz")
            # The first failure is the connection being cut; the next tries say why they fail.
            wait_for(lambda: "connections now" in relay.health()[1]["problems"].get("storage", ""), "the reason")
            problem = relay.health()[1]["problems"]["storage"]
            assert f"outbox {describe(url)}: the server does not take connections now" in problem, problem
            status, answer = relay.post("/v1/batch", {"batch": [track(i) for i in range(5, 10)]})
            assert status == 503 and answer["error"].startswith("the relay cannot store events now: outbox "), answer
            allow_connections(True)
            wait_for(lambda: relay.health()[0] == 200, "/healthz to recover", timeout=30)
            assert relay.post("/v1/batch", {"batch": [track(i) for i in range(5, 10)]})[0] == 200
            wait_for(lambda: pendo.delivered() == set(range(10)), "delivery to resume", timeout=30)
            wait_for(lambda: relay.metrics()["delivered"] == 10, "the deliveries to be recorded")
        finally:
            allow_connections(True)
            relay.stop()


def test_the_urls_own_options_are_kept_so_the_outbox_can_live_in_its_own_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE SCHEMA relay")
    outbox = PostgresOutbox(f"{url}&options=-csearch_path%3Drelay")
    try:
        outbox.add_many(events(1))
        with psycopg.connect(url) as db:
            tables = {row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'relay'")}
        assert {"outbox", "counters", "dead_letters", "relay_schema_version"} <= tables
    finally:
        outbox.close()


def test_a_database_down_at_start_is_waited_for_not_ready_then_ready_by_itself(
    tmp_path: Path, url: str, postgres_cluster: PostgresCluster
) -> None:
    name = url.split("/")[3].split("?", maxsplit=1)[0]

    def allow_connections(allowed: bool) -> None:
        with psycopg.connect(postgres_cluster.dsn, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allowed).lower()}")

    nowhere = f"postgresql://{postgres_cluster.user}@/postgres?host={postgres_cluster.socket_dir}&port=1"
    with recording_pendo() as pendo:
        # No server at all (a wrong port looks the same as a server not started yet): it waits, and says why.
        absent = SharingRelay(tmp_path / "absent", pendo.url, nowhere, "absent").start()
        try:
            status, ready = absent.get("/readyz")
            assert (status, ready["status"]) == (503, "not ready")
            assert ready["reason"].startswith(f"outbox {describe(nowhere)}: cannot reach the server")
            assert absent.get("/livez") == (200, {"status": "alive"})
        finally:
            absent.stop()
        allow_connections(False)
        relay = SharingRelay(tmp_path / "relay", pendo.url, url, "relay")
        try:
            relay.start()
            status, ready = relay.get("/readyz")
            assert status == 503
            assert f"outbox {describe(url)}: the server does not take connections now" in ready["reason"]
            status, answer = relay.post("/v1/batch", {"batch": [track(i) for i in range(5)]})
            assert status == 503 and "the server does not take connections now" in answer["error"], answer
            assert "; not ready, trying again in " in relay.health()[1]["problems"]["outbox"]
            allow_connections(True)
            wait_for(lambda: relay.get("/readyz") == (200, {"status": "ready"}), "ready once the database is", 40)
            assert relay.post("/v1/batch", {"batch": [track(i) for i in range(5)]})[0] == 200
            wait_for(lambda: pendo.delivered() == set(range(5)), "delivery")
            wait_for(relay.quiet, "healthz with nothing pending and no problem")
        finally:
            allow_connections(True)
            relay.stop()
        assert "Traceback" not in relay.log.read_text()
