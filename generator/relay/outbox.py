"""The durable outbox: every accepted event is on disk before it is acknowledged, until Pendo has it.

`Outbox` is the interface the relay uses; `SqliteOutbox` keeps it in one embedded SQLite file. A shared
database can take its place when one machine is not enough, by implementing the same few methods.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

COUNTERS = ("received", "duplicates", "delivered", "retried", "dead_lettered")


@dataclass(frozen=True)
class Pending:
    """One event waiting for delivery."""

    message_id: str
    body: dict[str, Any]
    attempts: int


class Outbox(Protocol):
    """What the relay needs from its storage."""

    def add(self, message_id: str, body: dict[str, Any]) -> bool:
        """Store an event once; False when its messageId was seen before."""

    def due(self, limit: int, exclude: set[str]) -> list[Pending]:
        """Events whose next attempt is due, oldest first."""

    def delivered(self, message_id: str) -> None:
        """Pendo accepted it."""

    def retry_later(self, message_id: str, delay_seconds: float, reason: str) -> None:
        """Try again after delay_seconds."""

    def dead_letter(self, message_id: str, status: int, reason: str) -> None:
        """Pendo refused it for good."""

    def stats(self) -> dict[str, int]:
        """Counters, plus how many events are pending."""

    def prune(self, before_ms: float) -> int:
        """Forget delivered and dead-lettered events whose timestamp is before before_ms; how many."""


class SqliteOutbox:
    """The outbox in a SQLite file (WAL mode): a crash or restart keeps every accepted event."""

    def __init__(self, path: Path) -> None:
        """Open or create the file."""
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
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
            CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
            CREATE TABLE IF NOT EXISTS dead_letters (
                message_id TEXT PRIMARY KEY, body TEXT NOT NULL, status INTEGER, reason TEXT, failed_at REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "event_time" not in columns:
            # An outbox from before event_time: its rows are kept until they are a week old by arrival.
            self._db.execute("ALTER TABLE outbox ADD COLUMN event_time REAL NOT NULL DEFAULT 0")
            self._db.execute("UPDATE outbox SET event_time = created_at * 1000")
        for name in COUNTERS:
            self._db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (name,))

    def _count(self, name: str) -> None:
        self._db.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, message_id: str, body: dict[str, Any]) -> bool:
        """Store an event once; False when its messageId was seen before."""
        now = time.time()
        with self._transaction() as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, body, next_attempt_at, created_at, event_time) "
                "VALUES (?, ?, ?, ?, ?)",
                (message_id, json.dumps(body), now, now, body["timestamp"]),
            ).rowcount
            self._count("received" if inserted else "duplicates")
        return bool(inserted)

    def due(self, limit: int, exclude: set[str]) -> list[Pending]:
        """Events whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, body, attempts FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? "
                "ORDER BY created_at LIMIT ?",
                (time.time(), limit + len(exclude)),
            ).fetchall()
        return [Pending(row[0], json.loads(row[1]), row[2]) for row in rows if row[0] not in exclude][:limit]

    def delivered(self, message_id: str) -> None:
        """Pendo accepted it."""
        with self._transaction() as db:
            db.execute(
                # Only the messageId is still needed (to refuse a replay); the body was the bulk of the row.
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, body = '' WHERE message_id = ?",
                (message_id,),
            )
            self._count("delivered")

    def retry_later(self, message_id: str, delay_seconds: float, reason: str) -> None:
        """Try again after delay_seconds."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE message_id = ?",
                (time.time() + delay_seconds, reason, message_id),
            )
            self._count("retried")

    def dead_letter(self, message_id: str, status: int, reason: str) -> None:
        """Pendo refused it for good: keep it, with the reason, out of the queue."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO dead_letters SELECT message_id, body, ?, ?, ? FROM outbox WHERE message_id = ?",
                (status, reason, time.time(), message_id),
            )
            db.execute("UPDATE outbox SET state = 'dead', body = '' WHERE message_id = ?", (message_id,))
            self._count("dead_lettered")

    def stats(self) -> dict[str, int]:
        """Counters, plus how many events are pending."""
        with self._lock:
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            pending = self._db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        return {**counters, "pending": pending}

    def prune(self, before_ms: float) -> int:
        """Forget delivered and dead-lettered events whose timestamp is before before_ms; how many."""
        with self._transaction() as db:
            removed: int = db.execute(
                "DELETE FROM outbox WHERE state IN ('delivered', 'dead') AND event_time < ?", (before_ms,)
            ).rowcount
        return removed

    def dead_letters(self) -> list[dict[str, Any]]:
        """Everything Pendo refused, with its status and reason."""
        with self._lock:
            rows = self._db.execute("SELECT message_id, status, reason FROM dead_letters ORDER BY failed_at").fetchall()
        return [{"messageId": row[0], "status": row[1], "reason": row[2]} for row in rows]

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
