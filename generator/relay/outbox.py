"""The durable outbox: every accepted event is on disk before it is acknowledged, until its destination has it.

`Outbox` is the interface the relay uses; `SqliteOutbox` keeps it in one embedded SQLite file. Another store
(say PostgreSQL with `SELECT … FOR UPDATE SKIP LOCKED`) can take its place by implementing the same methods:

* `add_many` stores a group of events in one transaction (one sync for the group) and says which were new;
* `claim` leases due events of one destination to the caller: nobody else gets them until the lease runs out,
  so a process that dies mid-send loses nothing, its leases just expire; `by_key` claims whole keys instead
  (every waiting event with the ordering key of a due one, and none of a key another caller holds), so events
  that must reach the destination in order (a record's metadata values) are sent by one caller at a time;
* `settle` records what happened to claimed events (`Delivered`, `RetryLater`, `DeadLetter`, or `Released`
  untried), in one transaction;
* `stats`, `dead_letters` and `prune` read and bound it.

Every method raises `StorageError` (with a sentence fit for an operator) when the storage itself fails.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from generator.errors import OutboxUnavailable, StorageError
from generator.relay.audience_store import AudienceStore, SqliteAudiences, fold_sqlite, prepare_sqlite

COUNTERS = ("received", "duplicates", "delivered", "retried", "dead_lettered", "pending")
# Below this much free space the relay would refuse events soon after starting; better to say so at once.
MIN_FREE_BYTES = 1024 * 1024
MOVE_ASIDE = "move it aside (and recover what it holds) to start with an empty outbox"


@dataclass(frozen=True)
class NewEvent:
    """An accepted event, as it will be sent."""

    message_id: str
    destination: str
    body: str  # the request body, JSON text
    event_time_ms: int
    # Events with the same key (within a destination) are claimed together and merged in acceptance order.
    order_key: str | None = None


@dataclass(frozen=True)
class Pending:
    """A claimed event: the caller holds its lease until it settles it."""

    message_id: str
    destination: str
    body: str
    attempts: int
    event_time_ms: int
    order_key: str | None = None
    # Increases with the order in which the outbox accepted events (compare only within one claim's key).
    sequence: int = 0


@dataclass(frozen=True)
class Delivered:
    """The destination accepted the event."""

    message_id: str


@dataclass(frozen=True)
class RetryLater:
    """Try the event again after delay_seconds; reason is what went wrong this time."""

    message_id: str
    delay_seconds: float
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    """The destination refused the event for good (status 0: the relay gave up on it itself)."""

    message_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class Released:
    """The caller did not get to try the event (it is stopping): due again now, no attempt counted."""

    message_id: str


Outcome = Delivered | RetryLater | DeadLetter | Released


class Outbox(AudienceStore, Protocol):
    """What the relay needs from its storage; see the module's docstring for the contract.

    Audience memberships have their own methods (AudienceStore, in `audience_store`).
    """

    def add_many(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store the events in one durable transaction; per event, False when its messageId was seen before."""

    def claim(self, destination: str, limit: int, lease_seconds: float, *, by_key: bool = False) -> list[Pending]:
        """Lease up to limit due events of destination, the longest due first (by_key: up to limit whole keys)."""

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes of claimed events in one transaction, ending their leases."""

    def stats(self) -> dict[str, int]:
        """The counters in COUNTERS; pending is how many events wait for delivery."""

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The most recent dead letters, newest first: messageId, status, reason."""

    def prune(self, before_ms: float, limit: int) -> int:
        """Forget up to limit settled events whose event time is before before_ms; how many."""

    def prune_dead_letters(self, before: float, limit: int) -> int:
        """Forget up to limit dead letters that failed before `before` (seconds since the epoch); how many."""

    def pending_by_destination(self) -> dict[str, tuple[int, float]]:
        """Per destination: how many events wait, and when the oldest of them was accepted (epoch seconds)."""

    def close(self) -> None:
        """Release the storage."""


@contextmanager
def immediate_transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (BEGIN IMMEDIATE) and rolled back on any error.

    SQLite's errors become a StorageError naming the file.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise storage_error(error, path) from None


def storage_error(error: BaseException, where: Path) -> StorageError:
    """A one-line StorageError for what SQLite (or the OS) said."""
    name = getattr(error, "sqlite_errorname", "")
    said = " ".join(str(error).split())
    if (
        name == "SQLITE_FULL"
        or getattr(error, "errno", None) == errno.ENOSPC
        or (name.startswith("SQLITE_IOERR") and _full(where))
    ):
        return OutboxUnavailable(f"outbox {where}: the disk is full")
    if name.startswith("SQLITE_READONLY") or getattr(error, "errno", None) in {errno.EACCES, errno.EROFS}:
        reason = "it is read-only (check the file's and the folder's permissions)"
    elif name.startswith("SQLITE_CORRUPT"):
        reason = f"the database is damaged ({said}); {MOVE_ASIDE}"
    elif name == "SQLITE_NOTADB":
        reason = f"it is not a SQLite database ({said}); {MOVE_ASIDE}"
    elif getattr(error, "errno", None) == errno.ENOENT:
        reason = f"its folder {where.parent} does not exist"
    elif name.startswith("SQLITE_CANTOPEN"):
        reason = "it cannot be opened (is the folder there, and writable?)"
    else:
        reason = said
    return StorageError(f"outbox {where}: {reason}")


SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    event_time REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dead_letters (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, status INTEGER, reason TEXT, failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# The partial index outbox_due_by_destination answers this in order: no sort, however many wait.
DUE_QUERY = (
    "SELECT message_id FROM outbox WHERE destination = ? AND state = 'pending' AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at LIMIT ?"
)
# Added after the first release; an older file gets them on opening.
LATER_COLUMNS = {
    "event_time": "REAL NOT NULL DEFAULT 0",
    "destination": "TEXT NOT NULL DEFAULT 'track'",
    "leased": "INTEGER NOT NULL DEFAULT 0",
    "order_key": "TEXT",
}
# Whole keys: the keys of the longest-due events (a window of them), then every waiting event of those keys.
# The order of acceptance is the rowid: SQLite gives a new row a rowid above every row in the table.
KEYS_SCAN = 8
KEY_CLAIM = (
    "UPDATE outbox SET leased = 1, next_attempt_at = ? WHERE destination = ? AND state = 'pending' "
    "AND order_key IS NOT NULL AND order_key IN ("
    "  SELECT order_key FROM (SELECT order_key FROM outbox WHERE destination = ? AND state = 'pending' "
    "  AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) WHERE order_key IS NOT NULL "
    "  GROUP BY order_key LIMIT ?"
    ") RETURNING message_id, body, attempts, event_time, order_key, rowid"
)
# Events without a key (stored damaged, say) among the same window: claimed one by one.
KEYLESS_CLAIM = (
    "UPDATE outbox SET leased = 1, next_attempt_at = ? WHERE message_id IN ("
    "  SELECT message_id FROM (SELECT message_id, order_key FROM outbox WHERE destination = ? AND state = 'pending' "
    "  AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) WHERE order_key IS NULL"
    ") RETURNING message_id, body, attempts, event_time, order_key, rowid"
)
INDEXES = """
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_due_by_destination ON outbox (destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_leased ON outbox (message_id) WHERE leased = 1;
-- Only entries with a key: track events (most of the intake) add nothing to it.
CREATE INDEX IF NOT EXISTS outbox_pending_keys ON outbox (destination, order_key)
    WHERE state = 'pending' AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_settled ON outbox (event_time) WHERE state != 'pending';
CREATE INDEX IF NOT EXISTS dead_letters_recent ON dead_letters (failed_at);
"""


def disk_full(path: Path) -> bool:
    """Whether the file system that holds path is (all but) full."""
    return _full(path)


def _full(path: Path) -> bool:
    """Whether the file system that holds path is (all but) full; SQLite only says "disk I/O error" for some."""
    try:
        free = os.statvfs(path.parent)
    except OSError:
        return False
    return free.f_bavail * free.f_frsize < MIN_FREE_BYTES


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _retry(outcome: Outcome) -> TypeGuard[RetryLater]:
    return isinstance(outcome, RetryLater)


def _execute_all(db: sqlite3.Connection, script: str) -> None:
    # Not executescript: that would commit the surrounding transaction first.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


class SqliteOutbox(SqliteAudiences):
    """The outbox in a SQLite file (WAL): a crash or restart keeps every accepted event.

    One process owns the file (a lock file says so), so leases left by a previous run are released on opening.
    Writes go through one connection, reads through another, so /metrics never waits for a group commit.
    """

    def __init__(self, path: Path) -> None:
        """Open or create the file; StorageError, with the reason, when it cannot serve as an outbox."""
        self.path = path
        if path.is_dir():
            raise StorageError(f"outbox {path}: it is a folder; --db takes the path of a file")
        if _full(path):
            raise OutboxUnavailable(f"outbox {path}: the disk is full")
        self._lock_file = -1
        opened: list[sqlite3.Connection] = []
        try:
            self._lock_file = self._take_ownership(path)
            self._db = self._connect(path)
            opened.append(self._db)
            self._prepare()
            self._reader = self._connect(path)
        except BaseException as error:
            # Nothing stays open or locked: a relay that tries again later (say, once the disk has space) can.
            for db in opened:
                db.close()
            if self._lock_file >= 0:
                os.close(self._lock_file)
            if isinstance(error, sqlite3.Error | OSError):
                raise storage_error(error, path) from None
            raise
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    @staticmethod
    def _take_ownership(path: Path) -> int:
        descriptor = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StorageError(f"outbox {path}: another relay is using it") from None
        return descriptor

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Text that is not UTF-8 (a damaged or hand-edited row) must not make every read fail: it is kept
        # as is, and the deliverer dead-letters the one event whose body cannot be sent.
        db.text_factory = _lenient_text
        db.execute("PRAGMA busy_timeout = 5000")
        # 32 MB of page cache: the due index and the rows being claimed stay in memory with a million waiting.
        db.execute("PRAGMA cache_size = -32000")
        return db

    def _prepare(self) -> None:
        db = self._db
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise StorageError(f"outbox {self.path}: SQLite cannot use write-ahead logging here")
        db.execute("PRAGMA synchronous=FULL")
        # A file damaged after its first pages opens fine and fails later, everywhere; find out now.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            found = " ".join("; ".join(problems).split())[:200]  # one line, whatever SQLite's layout
            raise StorageError(f"outbox {self.path}: the database is damaged ({found}); {MOVE_ASIDE}")
        db.execute("BEGIN IMMEDIATE")
        try:
            _execute_all(db, SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            for name, declaration in LATER_COLUMNS.items():
                if name not in columns:
                    db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {declaration}")
                    if name == "event_time":
                        # Rows from before event_time are kept until they are a week old by arrival.
                        db.execute("UPDATE outbox SET event_time = created_at * 1000")
                    if name == "order_key":
                        # Metadata entries stored before ordering keys: their record is their key.
                        db.execute(
                            "UPDATE outbox SET order_key = json_extract(body, '$.recordId') WHERE state = 'pending' "
                            "AND destination != 'track' AND json_valid(body)"
                        )
            _execute_all(db, INDEXES)
            prepare_sqlite(db, time.time())
            has_pending = db.execute("SELECT 1 FROM counters WHERE name = 'pending'").fetchone()
            for name in COUNTERS:
                db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (name,))
            if not has_pending:
                db.execute(
                    "UPDATE counters SET value = (SELECT COUNT(*) FROM outbox WHERE state = 'pending') "
                    "WHERE name = 'pending'"
                )
            # This process owns the file: whatever a previous run had leased is due again now.
            db.execute(
                "UPDATE outbox SET leased = 0, next_attempt_at = MIN(next_attempt_at, ?) WHERE leased = 1",
                (time.time(),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            try:
                # Bookkeeping (claims, outcomes) skips the sync: losing one to a power cut only means an
                # event is sent again, the at-least-once window; an accepted event is always synced.
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            except sqlite3.Error as error:
                raise storage_error(error, self.path) from None
            with immediate_transaction(self._db, self.path) as db:
                yield db

    def _read(self, query: str, parameters: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            try:
                return self._reader.execute(query, parameters).fetchall()
            except sqlite3.Error as error:
                raise storage_error(error, self.path) from None

    def add_many(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store the events in one durable transaction; per event, False when its messageId was seen before."""
        now = time.time()
        stored: list[bool] = []
        with self._transaction() as db:
            for event in events:
                inserted = db.execute(
                    "INSERT OR IGNORE INTO outbox (message_id, body, next_attempt_at, created_at, event_time, "
                    "destination, order_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event.message_id, event.body, now, now, event.event_time_ms, event.destination, event.order_key),
                ).rowcount
                stored.append(bool(inserted))
            new = sum(stored)
            # Engage audience calls wait as memberships (see audience_store), not as events.
            folded = fold_sqlite(db, events, stored, now)
            self._add_to(db, {"received": new, "pending": new - folded, "duplicates": len(stored) - new})
        return stored

    @staticmethod
    def _add_to(db: sqlite3.Connection, amounts: dict[str, int]) -> None:
        db.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?",
            [(amount, name) for name, amount in amounts.items() if amount],
        )

    def claim(self, destination: str, limit: int, lease_seconds: float, *, by_key: bool = False) -> list[Pending]:
        """Lease up to limit due events of destination, the longest due first (by_key: up to limit whole keys).

        One process owns the file, so no key is ever held by another caller.
        """
        now = time.time()
        with self._transaction(durable=False) as db:
            if by_key:
                rows = db.execute(
                    KEY_CLAIM, (now + lease_seconds, destination, destination, now, limit * KEYS_SCAN, limit)
                ).fetchall()
                rows += db.execute(KEYLESS_CLAIM, (now + lease_seconds, destination, now, limit)).fetchall()
                return sorted(
                    (Pending(row[0], destination, row[1], row[2], int(row[3]), row[4], row[5]) for row in rows),
                    key=lambda item: item.sequence,
                )
            rows = db.execute(
                f"UPDATE outbox SET leased = 1, next_attempt_at = ? WHERE message_id IN ({DUE_QUERY}) "
                "RETURNING message_id, body, attempts, event_time",
                (now + lease_seconds, destination, now, limit),
            ).fetchall()
        return [Pending(row[0], destination, row[1], row[2], int(row[3])) for row in rows]

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes of claimed events in one transaction, ending their leases."""
        now = time.time()
        delivered = [(item.message_id,) for item in outcomes if isinstance(item, Delivered)]
        retries = [
            (now + item.delay_seconds, item.reason, item.message_id)
            for item in outcomes
            if isinstance(item, RetryLater)
        ]
        dead = [item for item in outcomes if isinstance(item, DeadLetter)]
        released = [(now, item.message_id) for item in outcomes if isinstance(item, Released)]
        with self._transaction(durable=False) as db:
            done = db.executemany(
                # Only the messageId is still needed (to refuse a replay); the body was the bulk of the row.
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, body = '', leased = 0 "
                "WHERE message_id = ? AND state = 'pending'",
                delivered,
            ).rowcount
            retried = db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, leased = 0 "
                "WHERE message_id = ? AND state = 'pending'",
                retries,
            ).rowcount
            db.executemany(
                "UPDATE outbox SET next_attempt_at = ?, leased = 0 WHERE message_id = ? AND state = 'pending'",
                released,
            )
            db.executemany(
                "INSERT OR REPLACE INTO dead_letters SELECT message_id, body, ?, ?, ? FROM outbox "
                "WHERE message_id = ? AND state = 'pending'",
                [(item.status, item.reason, now, item.message_id) for item in dead],
            )
            died = db.executemany(
                "UPDATE outbox SET state = 'dead', body = '', leased = 0, last_error = ? "
                "WHERE message_id = ? AND state = 'pending'",
                [(item.reason, item.message_id) for item in dead],
            ).rowcount
            self._add_to(
                db,
                {
                    "delivered": max(done, 0),
                    "retried": max(retried, 0),
                    "dead_lettered": max(died, 0),
                    "pending": -max(done, 0) - max(died, 0),
                },
            )

    def stats(self) -> dict[str, int]:
        """The counters in COUNTERS; pending is how many events wait for delivery."""
        counters = dict(self._read("SELECT name, value FROM counters"))
        return {name: int(counters.get(name, 0)) for name in COUNTERS}

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The most recent dead letters, newest first: messageId, status, reason."""
        rows = self._read(
            "SELECT message_id, status, reason FROM dead_letters ORDER BY failed_at DESC LIMIT ?", (limit,)
        )
        return [{"messageId": row[0], "status": row[1], "reason": row[2]} for row in rows]

    def prune(self, before_ms: float, limit: int) -> int:
        """Forget up to limit settled events whose event time is before before_ms; how many."""
        with self._transaction(durable=False) as db:
            removed: int = db.execute(
                "DELETE FROM outbox WHERE rowid IN ("
                "  SELECT rowid FROM outbox WHERE state != 'pending' AND event_time < ? LIMIT ?"
                ")",
                (before_ms, limit),
            ).rowcount
        return removed

    def prune_dead_letters(self, before: float, limit: int) -> int:
        """Forget up to limit dead letters that failed before `before` (seconds since the epoch); how many."""
        with self._transaction(durable=False) as db:
            removed: int = db.execute(
                "DELETE FROM dead_letters WHERE rowid IN (SELECT rowid FROM dead_letters WHERE failed_at < ? LIMIT ?)",
                (before, limit),
            ).rowcount
        return removed

    def pending_by_destination(self) -> dict[str, tuple[int, float]]:
        """Per destination: how many events wait, and when the oldest of them was accepted (epoch seconds)."""
        # Counted from the due index alone; the oldest is the first row inserted (rowids only grow), one lookup each.
        rows = self._read(
            "SELECT destination, COUNT(*), MIN(rowid) FROM outbox WHERE state = 'pending' GROUP BY destination"
        )
        found: dict[str, tuple[int, float]] = {}
        for destination, count, first in rows:
            accepted = self._read("SELECT created_at FROM outbox WHERE rowid = ?", (first,))
            found[str(destination)] = (int(count), float(accepted[0][0]) if accepted else time.time())
        return found

    def close(self) -> None:
        """Close the file and give up ownership."""
        with self._write_lock, self._read_lock:
            self._db.close()
            self._reader.close()
        os.close(self._lock_file)
