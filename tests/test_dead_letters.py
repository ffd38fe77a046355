"""`segment-pendo dead-letters list | replay | purge` on SQLite and PostgreSQL, while a relay runs on the outbox."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from generator.relay.outbox import DeadLetter, NewEvent, Outbox, SqliteOutbox
from generator.relay.pg_outbox import PostgresOutbox
from tests.support.fake_pendo_track import FakePendoTrack, fake_pendo_track
from tests.support.outboxes import fresh_database
from tests.support.relay_process import RECENT_MS, Relay, track, wait_for

CHECKOUT = Path(__file__).resolve().parent.parent
DAY = 24 * 3600


@pytest.fixture
def pendo() -> Iterator[FakePendoTrack]:
    with fake_pendo_track() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "outbox.sqlite3")
    return fresh_database(request.getfixturevalue("postgres_cluster"))


class RelayOn(Relay):
    """A relay process whose --db is a SQLite file or a PostgreSQL URL."""

    def __init__(self, db: str, workdir: Path, pendo_url: str, options: tuple[str, ...] = ()) -> None:
        super().__init__(workdir, pendo_url, options=options)
        self.target = db

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--db") + 1] = self.target
        return command


def open_outbox(db: str) -> Outbox:
    return PostgresOutbox(db) if db.startswith("postgresql://") else SqliteOutbox(Path(db))


def execute(db: str, statement: str, parameters: tuple[Any, ...] = ()) -> None:
    """A change made straight in the storage (as an older relay, or time passing, would have left it)."""
    if db.startswith("postgresql://"):
        with psycopg.connect(db, autocommit=True) as connection:
            connection.execute(statement.replace("?", "%s"), parameters)
    else:
        with sqlite3.connect(db) as lite:
            lite.execute(statement, parameters)
        lite.close()


def dead_letter(outbox: Outbox, entry: str, destination: str, body: str, *, status: int, reason: str) -> None:
    outbox.add_many([NewEvent(entry, destination, body, RECENT_MS)])
    claimed = outbox.claim(destination, 10, 60)
    assert [item.message_id for item in claimed] == [entry]
    outbox.settle([DeadLetter(entry, status, reason)])


def command(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator", "dead-letters", *words],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def listed(db: str) -> list[dict[str, Any]]:
    result = command("list", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def check_listing(db: str) -> None:
    """Six dead letters: the identify entry and five track events."""
    entries = listed(db)
    assert len(entries) == 6
    by_id = {entry["messageId"]: entry for entry in entries}
    assert set(by_id) == {"meta-9", *(f"msg-{index}" for index in range(5))}
    assert by_id["meta-9"] | {"when": ""} == {
        "messageId": "meta-9",
        "kind": "metadata/visitor/agent",
        "status": 400,
        "reason": "Pendo refused email",
        "when": "",
    }
    assert by_id["msg-3"]["kind"] == "track"
    assert (by_id["msg-3"]["status"], by_id["msg-3"]["reason"]) == (400, "not accepted")
    assert (
        abs(time.mktime(time.strptime(by_id["msg-3"]["when"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone - time.time())
        < 120
    )
    table = command("list", "--db", db, "--limit", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 3 and lines[0].split() == ["when", "kind", "status", "messageId", "reason"]


def test_list_replay_and_purge_while_a_relay_runs_on_the_outbox(tmp_path: Path, db: str, pendo: FakePendoTrack) -> None:
    outbox = open_outbox(db)
    metadata_body = json.dumps({"recordId": "u-9", "values": {"email": "x"}, "timestamp": RECENT_MS})
    dead_letter(
        outbox,
        "meta-9#visitor/agent",
        "metadata/visitor/agent",
        metadata_body,
        status=400,
        reason="Pendo refused\nemail",
    )
    outbox.close()
    pendo.mode = "400"
    relay = RelayOn(db, tmp_path, pendo.url).start()
    try:
        assert relay.post("/v1/batch", {"batch": [track(index) for index in range(5)]})[0] == 200
        wait_for(lambda: relay.metrics()["dead_lettered"] == 6, "five track events refused by Pendo")

        check_listing(db)

        mistaken = command("replay", "--db", db, "--message-id", "msg-0", "no-such-id")
        assert mistaken.returncode == 1 and mistaken.stdout == ""
        assert mistaken.stderr.strip().splitlines() == [
            "error: no dead letter with messageId no-such-id; none replayed (see `dead-letters list`)"
        ]
        assert len(listed(db)) == 6, "all or nothing"

        pendo.mode = "ok"
        replayed = command("replay", "--db", db, "--message-id", "msg-0", "msg-1")
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.startswith("replayed 2 dead letters into ")
        wait_for(lambda: sorted(pendo.names()) == ["Server Event 0", "Server Event 1"], "the running relay delivers")
        wait_for(lambda: relay.metrics()["delivered"] == 2, "the deliveries recorded")
        assert relay.metrics()["pending"] == 0
        # Back under its own messageId: sending it again is still a duplicate.
        assert relay.post("/v1/track", track(0))[1]["duplicates"] == 1
        assert {entry["messageId"] for entry in listed(db)} == {"meta-9", "msg-2", "msg-3", "msg-4"}

        execute(
            db,
            "UPDATE dead_letters SET failed_at = failed_at - ? WHERE status = 400 AND reason LIKE ?",
            (30 * DAY, "Pendo refused%"),
        )
        before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - DAY))
        purged = command("purge", "--db", db, "--before", before)
        assert (purged.returncode, purged.stdout.split(" from ")[0]) == (0, "purged 1 dead letter"), purged.stderr
        assert {entry["messageId"] for entry in listed(db)} == {"msg-2", "msg-3", "msg-4"}

        replayed = command("replay", "--db", db, "--all")
        assert replayed.stdout.startswith("replayed 3 dead letters"), replayed.stderr
        wait_for(lambda: len(pendo.received) == 5, "every replayed event")
        assert sorted(pendo.names()) == [f"Server Event {index}" for index in range(5)]
        assert listed(db) == []
        assert command("list", "--db", db).stdout.startswith("no dead letters in ")
        assert command("purge", "--db", db, "--all").stdout.startswith("purged 0 dead letters")
        wait_for(lambda: relay.metrics()["pending"] == 0, "nothing pending")
    finally:
        relay.stop()
    assert "Traceback" not in relay.log.read_text()


def test_a_dead_letter_whose_outbox_row_was_pruned_is_replayed_under_its_messageid(tmp_path: Path, db: str) -> None:
    outbox = open_outbox(db)
    dead_letter(outbox, "gone-1", "track", json.dumps({"event": "E", "timestamp": RECENT_MS}), status=400, reason="no")
    outbox.close()
    execute(db, "DELETE FROM outbox WHERE state = 'dead'")
    assert command("replay", "--db", db, "--message-id", "gone-1").stdout.startswith("replayed 1 dead letter ")
    outbox = open_outbox(db)
    try:
        assert outbox.stats()["pending"] == 1
        [again] = outbox.claim("track", 10, 60)
        assert (again.message_id, again.event_time_ms) == ("gone-1", RECENT_MS)
        assert outbox.add_many([NewEvent("gone-1", "track", "{}", RECENT_MS)]) == [False], "still a duplicate"
    finally:
        outbox.close()


def test_the_relay_prunes_dead_letters_older_than_dead_letter_days(
    tmp_path: Path, db: str, pendo: FakePendoTrack
) -> None:
    outbox = open_outbox(db)
    for name in ("old-1", "old-2", "new-1"):
        dead_letter(outbox, name, "track", "{}", status=400, reason="refused")
    outbox.close()
    # Failed three days ago (PostgreSQL keeps messageIds as bytes).
    text_id = "convert_from(message_id, 'UTF8')" if db.startswith("postgresql://") else "message_id"
    execute(db, f"UPDATE dead_letters SET failed_at = failed_at - ? WHERE {text_id} LIKE ?", (3 * DAY, "old-%"))
    relay = RelayOn(db, tmp_path, pendo.url, options=("--dead-letter-days", "2", "--prune-every", "1")).start()
    try:
        wait_for(lambda: [entry["messageId"] for entry in listed(db)] == ["new-1"], "the old dead letters pruned")
    finally:
        relay.stop()


def test_thousands_of_dead_letters_are_replayed_and_purged_in_short_transactions(db: str) -> None:
    count = 1_200  # over two transactions' worth (CHUNK)

    def bury_all(outbox: Outbox) -> None:
        claimed = outbox.claim("track", count, 60)
        outbox.settle([DeadLetter(item.message_id, 400, "refused") for item in claimed])

    outbox = open_outbox(db)
    try:
        outbox.add_many([NewEvent(f"bulk-{index}", "track", "{}", RECENT_MS) for index in range(count)])
        bury_all(outbox)
        assert outbox.stats()["pending"] == 0
        replayed = command("replay", "--db", db, "--all")
        assert replayed.stdout.startswith(f"replayed {count:d} dead letters"), replayed.stderr
        assert outbox.stats()["pending"] == count
        assert listed(db) == []
        bury_all(outbox)
        purged = command("purge", "--db", db, "--all")
        assert purged.stdout.startswith(f"purged {count:d} dead letters"), purged.stderr
        assert outbox.stats()["pending"] == 0
        assert outbox.add_many([NewEvent("bulk-7", "track", "{}", RECENT_MS)]) == [False], "messageIds stay known"
    finally:
        outbox.close()


def test_a_replayed_identify_value_ranks_as_accepted_at_the_replay_and_a_membership_is_folded_in_again(
    tmp_path: Path, db: str
) -> None:
    agent = "metadata/visitor/agent"
    older = json.dumps({"recordId": "u1", "values": {"email": "old@x.example"}, "timestamp": RECENT_MS})
    newer = json.dumps({"recordId": "u1", "values": {"email": "new@x.example"}, "timestamp": RECENT_MS + 1})
    outbox = open_outbox(db)
    try:
        dead_letter(outbox, "id-old:visitor/agent", agent, older, status=400, reason="refused")
        outbox.add_many([NewEvent("id-new:visitor/agent", agent, newer, RECENT_MS + 1, order_key="u1")])
        # A membership Pendo refused (true), and a later call for the same visitor saying false.
        membership = json.dumps({"audience": "vip", "visitor": "v1", "member": True})
        key: Any = b"audience:vip:v1:v1" if db.startswith("postgresql://") else "audience:vip:v1:v1"
        execute(
            db,
            "INSERT INTO dead_letters (message_id, body, status, reason, failed_at) VALUES (?, ?, 400, 'no', ?)",
            (key, membership, time.time()),
        )
        left = json.dumps({"audience": "vip", "visitor": "v1", "member": False})
        assert outbox.add_many([NewEvent("engage-1", "audiences", left, RECENT_MS)]) == [True]
    finally:
        outbox.close()
    kinds = {entry["messageId"]: entry["kind"] for entry in listed(db)}
    assert kinds == {"id-old:visitor/agent": agent, "audience:vip:v1:v1": "audiences"}
    replayed = command("replay", "--db", db, "--all")
    assert replayed.stdout.startswith("replayed 2 dead letters"), (replayed.stdout, replayed.stderr)
    outbox = open_outbox(db)
    try:
        claimed = outbox.claim(agent, 10, 60, by_key=True)
        # Both wait under the record's key, the replayed one accepted last: the engine merges it as the latest.
        in_order = sorted(claimed, key=lambda item: item.sequence)
        assert [(item.message_id, item.order_key) for item in in_order] == [
            ("id-new:visitor/agent", "u1"),
            ("id-old:visitor/agent", "u1"),
        ]
        assert outbox.stats()["pending"] == 2, "the membership waits as a membership, not as an event"
        assert outbox.due_audiences() == ["vip"]
        [again] = outbox.claim_memberships("vip", 10, 60)
        assert (again.visitor, again.member) == ("v1", True), "the replayed call is the visitor's latest"
    finally:
        outbox.close()
    assert listed(db) == []
