"""Dead letters in a PostgreSQL outbox that relays share (see generator.relay.dead_letter_store)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from generator.errors import StorageError
from generator.relay.dead_letter_store import (
    CHUNK,
    DeadLetterEntry,
    entry_ids,
    event_time_ms,
    kind_of,
    membership,
    order_key,
)
from generator.relay.pg_audience_store import fold_pg
from generator.relay.pg_outbox import CONNECT_SECONDS, NOW, _id, _key, connect_error, describe, storage_error


class PostgresDeadLetters:
    """The dead letters of a PostgreSQL outbox, through a connection of its own."""

    def __init__(self, url: str) -> None:
        """Connect; StorageError (with the reason, never the password) when the outbox cannot be used."""
        self.where = describe(url)
        try:
            self._db: psycopg.Connection[Any] = psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_SECONDS, application_name="segment-pendo dead-letters"
            )
        except psycopg.Error as error:
            raise connect_error(error, self.where) from None
        try:
            row = self._db.execute("SELECT to_regclass('dead_letters') IS NOT NULL").fetchone()
        except psycopg.Error as error:
            self._db.close()
            raise storage_error(error, self.where) from None
        if not (row and row[0]):
            self._db.close()
            raise StorageError(f"outbox {self.where}: it holds no relay outbox (no dead_letters table); check --db")

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._db.transaction():
                yield self._db
        except psycopg.Error as error:
            raise storage_error(error, self.where) from None

    def entries(self, limit: int) -> list[DeadLetterEntry]:
        """The most recent dead letters, newest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT d.message_id, o.destination, d.status, d.reason, d.failed_at FROM dead_letters d "
                "LEFT JOIN outbox o ON o.message_id = d.message_id ORDER BY d.failed_at DESC LIMIT %s",
                (limit,),
            ).fetchall()
        return [
            DeadLetterEntry(*kind_of(_id(row[0]), row[1]), row[2], " ".join(str(row[3] or "").split()), float(row[4]))
            for row in rows
        ]

    def _read(self, query: str, parameters: Sequence[Any]) -> list[Any]:
        try:
            return self._db.execute(query, parameters).fetchall()
        except psycopg.Error as error:
            raise storage_error(error, self.where) from None

    def replay(self, message_ids: Sequence[str] | None) -> tuple[int, list[str]]:
        """Put dead letters back in the outbox (all with None); how many, and the ids given that matched none."""
        if message_ids is None:
            # Those there now: one a running relay dead-letters again meanwhile is not taken round again.
            keys = [bytes(row[0]) for row in self._read("SELECT message_id FROM dead_letters ORDER BY failed_at", ())]
        else:
            keys, unknown = [], []
            for given, candidates in entry_ids(message_ids).items():
                found = self._read(
                    "SELECT message_id FROM dead_letters WHERE message_id = ANY(%s::bytea[])",
                    ([_key(candidate) for candidate in candidates],),
                )
                keys += [bytes(row[0]) for row in found]
                if not found:
                    unknown.append(given)
            if unknown:
                return 0, unknown  # all or nothing: a mistyped id replays none
        return sum(self._replay(keys[start : start + CHUNK]) for start in range(0, len(keys), CHUNK)), []

    def _replay(self, keys: Sequence[bytes]) -> int:
        replayed = pending = 0
        with self._transaction() as db:
            for key in keys:
                row = db.execute("SELECT body FROM dead_letters WHERE message_id = %s FOR UPDATE", (key,)).fetchone()
                if row is None:
                    continue  # purged meanwhile
                body = str(row[0])
                db.execute("DELETE FROM dead_letters WHERE message_id = %s", (key,))
                old = db.execute(
                    "SELECT state, destination, event_time FROM outbox WHERE message_id = %s FOR UPDATE", (key,)
                ).fetchone()
                call = membership(_id(key), body, int(time.time() * 1000)) if old is None else None
                if call is not None:
                    fold_pg(db, [call], [True])  # the latest call for its visitor, as at intake
                    replayed += 1
                    continue
                if old is not None and old[0] != "dead":
                    continue  # the entry is in the outbox again already
                destination = str(old[1]) if old is not None else kind_of(_id(key), None)[1]
                # A new seq (the order of acceptance): the engine merges a replayed value as its record's latest.
                back = db.execute(
                    "INSERT INTO outbox (message_id, destination, body, event_time, order_key, next_attempt_at, "
                    f"created_at) VALUES (%s, %s, %s, %s, %s, {NOW}, {NOW}) ON CONFLICT (message_id) DO UPDATE SET "
                    "state = 'pending', body = EXCLUDED.body, attempts = 0, leased_by = NULL, last_error = NULL, "
                    "next_attempt_at = EXCLUDED.next_attempt_at, created_at = EXCLUDED.created_at, "
                    "order_key = EXCLUDED.order_key, seq = nextval(pg_get_serial_sequence('outbox', 'seq')) "
                    "WHERE outbox.state = 'dead'",
                    (
                        key,
                        destination,
                        body,
                        old[2] if old is not None else event_time_ms(body),
                        order_key(body, destination),
                    ),
                ).rowcount
                replayed += max(back, 0)
                pending += max(back, 0)
            if pending:
                # Shard 0 holds the totals of no running relay: the count of pending events is a sum over shards.
                db.execute(
                    "INSERT INTO counters (name, shard, value) VALUES ('pending', 0, %s) "
                    "ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + EXCLUDED.value",
                    (pending,),
                )
        return replayed

    def purge(self, before: float | None) -> int:
        """Forget the dead letters that failed before `before` (all with None); how many."""
        cutoff = math.inf if before is None else before
        removed = 0
        while True:
            with self._transaction() as db:
                deleted: int = db.execute(
                    "DELETE FROM dead_letters WHERE message_id IN "
                    "(SELECT message_id FROM dead_letters WHERE failed_at < %s LIMIT %s)",
                    (cutoff, CHUNK),
                ).rowcount
            removed += deleted
            if deleted < CHUNK:
                return removed

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
