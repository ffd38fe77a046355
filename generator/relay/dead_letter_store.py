"""Dead letters in a relay's outbox, for an operator: list them, put them back in the outbox, forget them.

Works on the outbox of running relays: each change is one short transaction, as the relays' own are, and a replayed
event goes back under its own messageId (its outbox row, kept for deduplication, becomes due again), so it is
still a duplicate to any sender that sends it again. A replayed entry counts as accepted at the replay: an identify
or group value gets its record's ordering key and a new place in the order of acceptance, so the delivery engine
merges it as the latest value of its record, and an audience membership is folded in again as the latest call for
its visitor. A SQLite outbox is opened beside the relay that owns it (no ownership is taken); a PostgreSQL one
through a connection of its own (no owner key, no leases).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from generator.errors import GeneratorError, StorageError
from generator.relay.audience_store import fold_sqlite
from generator.relay.audiences import AUDIENCES, stored_membership
from generator.relay.metadata_rows import DESTINATIONS, destination_name, entry_id
from generator.relay.outbox import NewEvent, immediate_transaction, storage_error

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Dead letters changed per transaction: a relay writing to the same outbox never waits long for the command.
CHUNK = 500
# The track deliverer's queue (generator.relay.delivery.TRACK; not imported, so this needs no HTTP client).
TRACK = "track"
# The id of an audience membership's dead letter starts so (generator.relay.audience_store.dead_letter_id).
MEMBERSHIP_PREFIX = "audience:"


@dataclass(frozen=True)
class DeadLetterEntry:
    """One dead letter: the call's messageId, where it was going, Pendo's status (0: the relay's own) and reason."""

    message_id: str
    kind: str
    status: int | None
    reason: str
    failed_at: float

    def as_json(self) -> dict[str, Any]:
        """As `dead-letters list --json` prints it."""
        return {
            "messageId": self.message_id,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "when": iso_time(self.failed_at),
        }


class DeadLetterStore(Protocol):
    """What the dead-letters commands need from an outbox."""

    where: str

    def entries(self, limit: int) -> list[DeadLetterEntry]:
        """The most recent dead letters, newest first."""

    def replay(self, message_ids: Sequence[str] | None) -> tuple[int, list[str]]:
        """Put dead letters back in the outbox (all with None); how many, and the ids given that matched none."""

    def purge(self, before: float | None) -> int:
        """Forget the dead letters that failed before `before` (all with None); how many."""

    def close(self) -> None:
        """Let go of the storage."""


def iso_time(seconds: float) -> str:
    """Seconds since the epoch as ISO 8601 in UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def kind_of(entry: str, destination: str | None) -> tuple[str, str]:
    """(the call's messageId, its destination) of an outbox entry id; an identify or group entry carries a suffix."""
    if destination is None and entry.startswith(MEMBERSHIP_PREFIX):
        return entry, AUDIENCES  # memberships have no outbox row
    for target in DESTINATIONS:
        suffix = entry_id("", target)
        if entry.endswith(suffix) and destination in (None, destination_name(target)):
            return entry.removesuffix(suffix), destination_name(target)
    return entry, destination or TRACK


def entry_ids(message_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every outbox entry id a given messageId may stand for: itself, and its identify or group entries."""
    return {given: [given, *(entry_id(given, target) for target in DESTINATIONS)] for given in message_ids}


def event_time_ms(body: str) -> int:
    """The event time a stored body carries (track and metadata bodies both have `timestamp`), else now."""
    try:
        stamp = json.loads(body).get("timestamp")
    except (ValueError, AttributeError):
        stamp = None
    return stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else int(time.time() * 1000)


def order_key(body: str, destination: str) -> str | None:
    """The ordering key an entry is stored with: an identify or group entry's record (recordId), else none."""
    if destination == TRACK:
        return None
    try:
        record = json.loads(body).get("recordId")
    except (ValueError, AttributeError):
        return None
    return record if isinstance(record, str) else None


def membership(entry: str, body: str, now_ms: int) -> NewEvent | None:
    """The audience membership a dead letter holds, as a call to fold in again; None when it holds none."""
    if not entry.startswith(MEMBERSHIP_PREFIX):
        return None
    try:
        stored_membership(body)
    except (ValueError, AttributeError):
        return None
    return NewEvent(entry, AUDIENCES, body, now_ms)


def open_store(db: str) -> DeadLetterStore:
    """The dead letters of the outbox --db names (a SQLite file or a postgresql:// URL)."""
    if not db.startswith(POSTGRES_SCHEMES):
        return SqliteDeadLetters(Path(db))
    try:
        from generator.relay.pg_dead_letters import PostgresDeadLetters  # noqa: PLC0415  (psycopg is optional)
    except ImportError:
        raise GeneratorError(
            "--db is a PostgreSQL URL but psycopg is not installed; pip install 'segment-pendo[postgres]'"
        ) from None
    return PostgresDeadLetters(db)


class SqliteDeadLetters:
    """The dead letters of a SQLite outbox, possibly in use by a running relay."""

    def __init__(self, path: Path) -> None:
        """Open the outbox file; GeneratorError when there is none, StorageError when it is unusable."""
        self.where = str(path)
        if not path.exists():
            raise GeneratorError(f"--db {path}: no such file; pass the outbox file the relay was given")
        if path.is_dir():
            raise GeneratorError(f"--db {path} is a folder; pass the outbox file the relay was given")
        self.path = path
        try:
            self._db = sqlite3.connect(
                f"file:{urllib.parse.quote(str(path.resolve()))}?mode=rw", uri=True, isolation_level=None
            )
            self._db.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
            self._db.execute("PRAGMA busy_timeout = 10000")
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as error:
            raise storage_error(error, path) from None
        if not {"outbox", "dead_letters", "counters"} <= tables:
            self._db.close()
            raise StorageError(f"outbox {path}: it holds no relay outbox (no dead_letters table); check --db")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with immediate_transaction(self._db, self.path) as db:
            yield db

    def entries(self, limit: int) -> list[DeadLetterEntry]:
        """The most recent dead letters, newest first."""
        try:
            rows = self._db.execute(
                "SELECT d.message_id, o.destination, d.status, d.reason, d.failed_at FROM dead_letters d "
                "LEFT JOIN outbox o ON o.message_id = d.message_id ORDER BY d.failed_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        except sqlite3.Error as error:
            raise storage_error(error, self.path) from None
        return [
            DeadLetterEntry(*kind_of(row[0], row[1]), row[2], " ".join(str(row[3] or "").split()), float(row[4]))
            for row in rows
        ]

    def _read(self, query: str, parameters: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(query, parameters).fetchall()
        except sqlite3.Error as error:
            raise storage_error(error, self.path) from None

    def replay(self, message_ids: Sequence[str] | None) -> tuple[int, list[str]]:
        """Put dead letters back in the outbox (all with None); how many, and the ids given that matched none."""
        if message_ids is None:
            # Those there now: one a running relay dead-letters again meanwhile is not taken round again.
            keys = [row[0] for row in self._read("SELECT message_id FROM dead_letters ORDER BY failed_at")]
        else:
            keys, unknown = [], []
            for given, candidates in entry_ids(message_ids).items():
                marks = ",".join("?" * len(candidates))
                found = self._read(f"SELECT message_id FROM dead_letters WHERE message_id IN ({marks})", candidates)
                keys += [row[0] for row in found]
                if not found:
                    unknown.append(given)
            if unknown:
                return 0, unknown  # all or nothing: a mistyped id replays none
        return sum(self._replay(keys[start : start + CHUNK]) for start in range(0, len(keys), CHUNK)), []

    def _replay(self, keys: Sequence[str]) -> int:
        now = time.time()
        replayed = pending = 0
        with self._transaction() as db:
            for entry in keys:
                row = db.execute("SELECT body FROM dead_letters WHERE message_id = ?", (entry,)).fetchone()
                if row is None:
                    continue  # purged meanwhile
                body = row[0]
                db.execute("DELETE FROM dead_letters WHERE message_id = ?", (entry,))
                old = db.execute(
                    "SELECT state, destination, event_time FROM outbox WHERE message_id = ?", (entry,)
                ).fetchone()
                call = membership(entry, body, int(now * 1000)) if old is None else None
                if call is not None:
                    fold_sqlite(db, [call], [True], now)  # the latest call for its visitor, as at intake
                    replayed += 1
                    continue
                if old is not None and old[0] != "dead":
                    continue  # the entry is in the outbox again already
                destination = str(old[1]) if old is not None else kind_of(entry, None)[1]
                event_time = old[2] if old is not None else event_time_ms(body)
                # A new row rather than the old one due again: its rowid (the order of acceptance) is above every
                # other row's, so the engine merges a replayed value as its record's latest. A pruned row comes
                # back the same way.
                db.execute("DELETE FROM outbox WHERE message_id = ?", (entry,))
                db.execute(
                    "INSERT INTO outbox (message_id, body, next_attempt_at, created_at, event_time, destination, "
                    "order_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (entry, body, now, now, event_time, destination, order_key(body, destination)),
                )
                replayed += 1
                pending += 1
            db.execute("UPDATE counters SET value = value + ? WHERE name = 'pending'", (pending,))
        return replayed

    def purge(self, before: float | None) -> int:
        """Forget the dead letters that failed before `before` (all with None); how many."""
        cutoff = math.inf if before is None else before
        removed = 0
        while True:
            with self._transaction() as db:
                deleted: int = db.execute(
                    "DELETE FROM dead_letters WHERE rowid IN "
                    "(SELECT rowid FROM dead_letters WHERE failed_at < ? LIMIT ?)",
                    (cutoff, CHUNK),
                ).rowcount
            removed += deleted
            if deleted < CHUNK:
                return removed

    def close(self) -> None:
        """Close the file."""
        self._db.close()
