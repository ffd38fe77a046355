"""Dead letters in a PostgreSQL outbox that relays share (see generator.relay.dead_letter_store)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from generator.errors import StorageError
from generator.relay.dead_letter_store import CHUNK, DeadLetterEntry, entry_ids, event_time_ms, kind_of
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
        replayed = 0
        with self._transaction() as db:
            for key in keys:
                row = db.execute("SELECT body FROM dead_letters WHERE message_id = %s FOR UPDATE", (key,)).fetchone()
                if row is None:
                    continue  # purged meanwhile
                back = db.execute(
                    f"UPDATE outbox SET state = 'pending', body = %s, attempts = 0, next_attempt_at = {NOW}, "
                    "leased_by = NULL, last_error = NULL WHERE message_id = %s AND state = 'dead'",
                    (row[0], key),
                ).rowcount
                if not back and db.execute("SELECT 1 FROM outbox WHERE message_id = %s", (key,)).fetchone() is None:
                    # Its outbox row was pruned: the entry comes back as it was accepted.
                    _, destination = kind_of(_id(key), None)
                    back = db.execute(
                        "INSERT INTO outbox (message_id, destination, body, event_time, next_attempt_at, created_at) "
                        f"VALUES (%s, %s, %s, %s, {NOW}, {NOW}) ON CONFLICT (message_id) DO NOTHING",
                        (key, destination, row[0], event_time_ms(row[0])),
                    ).rowcount
                replayed += max(back, 0)
                db.execute("DELETE FROM dead_letters WHERE message_id = %s", (key,))
            if replayed:
                # Shard 0 holds the totals of no running relay: the count of pending events is a sum over shards.
                db.execute(
                    "INSERT INTO counters (name, shard, value) VALUES ('pending', 0, %s) "
                    "ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + EXCLUDED.value",
                    (replayed,),
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
