"""The outbox in PostgreSQL, shared by any number of relays (`--db postgresql://…`).

The same contract as `SqliteOutbox` (see `generator.relay.outbox`), for relays on several machines:

* claims take due rows with `SELECT … FOR UPDATE SKIP LOCKED`, so two relays never lease the same event;
* a lease ends when its time runs out, or at once when its relay dies: each relay holds a session advisory lock
  (its *owner* key) on its writing connection, and the leases of owners whose lock is gone (the process died, its
  connection closed) are handed back; an outcome for an event whose lease another relay has taken since
  (`RetryLater`, `Released`) is ignored, so that relay's attempt is the one that counts;
* a messageId is accepted once, whichever relay sees it (the primary key);
* claims of whole keys (`by_key`) are serialised per destination (a transaction advisory lock), and skip keys with
  an event another live relay holds, so one relay at a time sends a key's events; `seq` (a sequence) is the
  order of acceptance;
* the counters are kept per relay (no lock shared between relays for them) and summed when read;
* times are the database server's clock, so relays whose clocks differ agree on when a lease ends.

The schema is created or migrated at start under a transaction advisory lock (relays may start together); its
version is in `relay_schema_version`. Every failure is a `StorageError` naming the server (never the password).
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo, errors

from generator.errors import OutboxUnavailable, StorageError
from generator.relay.outbox import (
    COUNTERS,
    DeadLetter,
    Delivered,
    NewEvent,
    Outcome,
    Pending,
    Released,
    RetryLater,
)
from generator.relay.pg_audience_store import PostgresAudiences, fold_pg, prepare_audiences, reap_audiences

T = TypeVar("T")
SCHEMA_VERSION = 2
# Advisory lock keys (first half: this application; second half: what is locked).
APP_KEY = 0x5E6D_0E1A  # "segment pendo relay"
SCHEMA_LOCK = 1
# Claims of whole keys, one destination at a time (its own first key, so it never looks like a relay's owner key).
KEY_CLAIM_APP_KEY = APP_KEY + 1
# Whole keys: the keys among this many times the limit of the longest-due events.
KEYS_SCAN = 8
# Leases of dead relays are looked for at most this often (it reads pg_locks, which is not free).
REAP_SECONDS = 1.0
CONNECT_SECONDS = 10
# No statement the relay makes should take long; one that does means the server is in trouble, not busy.
STATEMENT_TIMEOUT_MS = 60_000
READERS = 2
NOW = "extract(epoch from clock_timestamp())"

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE outbox (
    message_id bytea PRIMARY KEY,
    destination text NOT NULL,
    body text NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    leased_by integer,
    last_error text,
    created_at double precision NOT NULL,
    event_time bigint NOT NULL
);
CREATE INDEX outbox_due_by_destination ON outbox (destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_leased ON outbox (leased_by) WHERE leased_by IS NOT NULL;
CREATE INDEX outbox_settled ON outbox (event_time) WHERE state <> 'pending';
CREATE TABLE dead_letters (
    message_id bytea PRIMARY KEY,
    body text NOT NULL,
    status integer,
    reason text,
    failed_at double precision NOT NULL
);
CREATE INDEX dead_letters_recent ON dead_letters (failed_at);
-- shard 0 holds the totals of relays that have gone; a running relay adds to its own shard (its owner key).
CREATE TABLE counters (name text NOT NULL, shard integer NOT NULL, value bigint NOT NULL, PRIMARY KEY (name, shard));
""",
    2: """
ALTER TABLE outbox ADD COLUMN order_key text;
ALTER TABLE outbox ADD COLUMN seq bigserial;
-- Only entries with a key: track events (most of the intake) add nothing to it.
CREATE INDEX outbox_pending_keys ON outbox (destination, order_key) WHERE state = 'pending' AND order_key IS NOT NULL;
""",
}

LIVE_OWNERS = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "AND classid = %(app)s::oid AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def describe(url: str) -> str:
    """Where the outbox is, for messages: the URL without its password (or the text as given if unparseable)."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://…"
    host = str(parts.get("host") or "localhost")
    port = parts.get("port")
    user = f"{parts['user']}@" if parts.get("user") else ""
    database = parts.get("dbname") or parts.get("user") or ""
    where = f"{host}:{port}" if port else host
    return f"postgresql://{user}{where}/{database}"


def _message(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


def connect_error(error: psycopg.Error, where: str) -> StorageError:
    """A one-line StorageError for a connection that could not be opened."""
    said = _message(error)
    state = getattr(error, "sqlstate", None) or ""
    lowered = said.lower()
    if isinstance(error, psycopg.ProgrammingError) and not state:
        reason = f"the URL is not usable ({said}); write it as postgresql://user:password@host:5432/database"
    elif (
        state in {"28P01", "28000"}
        or any(words in lowered for words in ("authentication failed", "no password supplied", "no pg_hba.conf"))
        or ('role "' in lowered and "does not exist" in lowered)
    ):
        reason = f"the server refused the user or password ({said}); check the credentials in the URL"
    elif state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        reason = f"the database does not exist ({said}); create it (createdb) or fix the URL"
    elif "not currently accepting connections" in lowered or "the database system is" in lowered:
        reason = f"the server does not take connections now ({said}); waiting for it"
    elif "timeout expired" in lowered:
        reason = f"no answer from the server within {CONNECT_SECONDS}s; is the host right and reachable?"
    else:
        reason = f"cannot reach the server ({said}); is PostgreSQL running there and accepting connections?"
    if reason.startswith(("the URL", "the server refused", "the database does not")):
        return StorageError(f"outbox {where}: {reason}")
    # A server that is down or starting (or a network in the way) may be back soon: the relay waits for it.
    return OutboxUnavailable(f"outbox {where}: {reason}")


def storage_error(error: psycopg.Error, where: str) -> StorageError:
    """A one-line StorageError for a failure on an open connection."""
    said = _message(error)
    if isinstance(error, errors.InsufficientPrivilege):
        reason = f"the user may not do this ({said}); grant it rights on the outbox's tables"
    elif isinstance(error, errors.DiskFull):
        return OutboxUnavailable(f"outbox {where}: the database server's disk is full ({said})")
    elif isinstance(error, errors.QueryCanceled):
        reason = f"a statement took over {STATEMENT_TIMEOUT_MS // 1000}s ({said}); is the server overloaded?"
    elif isinstance(error, psycopg.OperationalError):
        return OutboxUnavailable(f"outbox {where}: the connection to PostgreSQL failed ({said}); retrying")
    else:
        reason = said
    return StorageError(f"outbox {where}: {reason}")


def _key(message_id: str) -> bytes:
    # bytea, not text: a messageId may hold NUL, which PostgreSQL's text cannot.
    return message_id.encode("utf-8", "surrogatepass")


def _id(key: bytes) -> str:
    return bytes(key).decode("utf-8", "surrogatepass")


def _text(value: str) -> str:
    """What PostgreSQL's text can hold: no NUL, valid UTF-8 (a reason may quote any bytes an endpoint sent)."""
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _key_old_metadata_entries(db: psycopg.Connection[Any]) -> None:
    """Metadata entries stored before ordering keys: their record is their key (a damaged entry keeps none)."""
    rows = db.execute(
        "SELECT message_id, body FROM outbox WHERE state = 'pending' AND destination <> 'track' AND order_key IS NULL"
    ).fetchall()
    keys: list[tuple[bytes, str]] = []
    for message_id, body in rows:
        try:
            record = json.loads(body).get("recordId")
        except (ValueError, AttributeError):
            continue
        if isinstance(record, str):
            keys.append((bytes(message_id), record))
    if keys:
        db.execute(
            "UPDATE outbox SET order_key = v.k FROM unnest(%s::bytea[], %s::text[]) AS v(i, k) "
            "WHERE outbox.message_id = v.i",
            ([key[0] for key in keys], [key[1] for key in keys]),
        )


class PostgresOutbox(PostgresAudiences):
    """The outbox in a PostgreSQL database that several relays share.

    One connection writes (the relay has one writer thread) and holds this relay's owner lock; a few more read
    (/metrics, /healthz), so reads never wait for writes. A broken connection is replaced on the next call.
    """

    def __init__(self, url: str) -> None:
        """Connect, take an owner key, create or migrate the schema; StorageError, with the reason, if not."""
        self.url = url
        self.where = describe(url)
        try:
            parts = conninfo.conninfo_to_dict(url)
        except psycopg.Error as error:
            raise connect_error(error, self.where) from None
        self._options = str(parts.get("options") or "")
        ports = str(parts.get("port") or "")
        if not all(port.isdigit() for port in ports.split(",") if port):
            raise StorageError(f"outbox {self.where}: the URL is not usable (port {ports!r} is not a number)")
        self.owner = 0
        self._writer: psycopg.Connection[Any] | None = None
        self._write_lock = threading.Lock()
        self._readers: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._reader_slots = threading.BoundedSemaphore(READERS)
        self._next_reap = 0.0
        self._closed = False
        with self._write_lock:
            self._writing()  # connects, takes the owner key, migrates, hands back dead relays' leases

    # --- connections -------------------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        # The URL's own options (say, -c search_path=relay) are kept; the statement timeout is added to them.
        options = f"{self._options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_SECONDS,
                application_name="segment-pendo relay",
                options=options,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as error:
            raise connect_error(error, self.where) from None

    def _writing(self) -> psycopg.Connection[Any]:
        """The writing connection (caller holds _write_lock), opened and prepared again if it broke."""
        if self._closed:
            raise StorageError(f"outbox {self.where}: it is closed")
        if self._writer is not None and not self._writer.broken and not self._writer.closed:
            return self._writer
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        db = self._connect()
        try:
            self._take_owner_key(db)
            self._prepare(db)
        except psycopg.Error as error:
            db.close()
            raise storage_error(error, self.where) from None
        except BaseException:
            db.close()
            raise
        self._writer = db
        return db

    def _take_owner_key(self, db: psycopg.Connection[Any]) -> None:
        # Keep the key of an earlier connection if nobody has it: leases it still holds stay its own.
        candidates = [self.owner] if self.owner else []
        candidates += [random.randint(1, 2**31 - 1) for _ in range(8)]
        for owner in candidates:
            row = db.execute("SELECT pg_try_advisory_lock(%s, %s)", (APP_KEY, owner)).fetchone()
            if row and row[0]:
                self.owner = owner
                return
        raise StorageError(f"outbox {self.where}: no free owner key for this relay (too many relays?)")

    def _prepare(self, db: psycopg.Connection[Any]) -> None:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (APP_KEY, SCHEMA_LOCK))
            db.execute("CREATE TABLE IF NOT EXISTS relay_schema_version (version integer NOT NULL)")
            row = db.execute("SELECT max(version) FROM relay_schema_version").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"outbox {self.where}: its schema is version {version}, newer than this relay knows "
                    f"({SCHEMA_VERSION}); upgrade this relay to the version the others run"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                db.execute(MIGRATIONS[number])
                if number == 2 and version >= 1:
                    _key_old_metadata_entries(db)
            if version < SCHEMA_VERSION:
                db.execute("DELETE FROM relay_schema_version")
                db.execute("INSERT INTO relay_schema_version VALUES (%s)", (SCHEMA_VERSION,))
            # The counters of relays that have gone are folded into shard 0, so there are few rows to sum.
            db.execute(
                "WITH gone AS (DELETE FROM counters WHERE shard <> 0 AND shard NOT IN (" + LIVE_OWNERS + ") "
                "RETURNING name, value) "
                "INSERT INTO counters (name, shard, value) SELECT name, 0, sum(value) FROM gone GROUP BY name "
                "ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + EXCLUDED.value",
                {"app": APP_KEY},
            )
            prepare_audiences(db)
            self._reap(db)

    def _reap(self, db: psycopg.Connection[Any]) -> None:
        """Hand back the leases of relays that are gone (their owner lock is free): due again now."""
        db.execute(
            f"UPDATE outbox SET leased_by = NULL, next_attempt_at = least(next_attempt_at, {NOW}) "
            "WHERE message_id IN (SELECT message_id FROM outbox WHERE leased_by IS NOT NULL "
            "AND leased_by NOT IN (" + LIVE_OWNERS + ") FOR UPDATE SKIP LOCKED)",
            {"app": APP_KEY},
        )
        reap_audiences(db, LIVE_OWNERS, APP_KEY)
        self._next_reap = time.monotonic() + REAP_SECONDS

    def _reap_if_due(self, db: psycopg.Connection[Any]) -> None:
        if time.monotonic() >= self._next_reap:
            self._reap(db)

    @contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[psycopg.Connection[Any]]:
        with self._write_lock:
            db = self._writing()
            try:
                with db.transaction():
                    if not durable:
                        # Bookkeeping (claims, outcomes) need not wait for the server's sync: losing one to a
                        # crash of the server only means an event is sent again, the at-least-once window.
                        db.execute("SET LOCAL synchronous_commit = off")
                    yield db
            except psycopg.Error as error:
                raise storage_error(error, self.where) from None

    def _read(self, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._reader_slots:
            try:
                db = self._readers.get_nowait()
            except queue.Empty:
                db = self._connect()
            try:
                result = action(db)
            except psycopg.Error as error:
                db.close()
                raise storage_error(error, self.where) from None
            except BaseException:
                db.close()
                raise
            self._readers.put(db)
            return result

    # --- the Outbox protocol -----------------------------------------------------------------------------------

    def add_many(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store the events in one durable transaction; per event, False when its messageId was seen before."""
        first: dict[bytes, NewEvent] = {}
        for event in events:
            first.setdefault(_key(event.message_id), event)
        rows = list(first.items())
        with self._transaction() as db:
            inserted = {
                bytes(row[0])
                for row in db.execute(
                    "INSERT INTO outbox (message_id, destination, body, event_time, order_key, next_attempt_at, "
                    f"created_at) SELECT i, d, b, t, k, {NOW}, {NOW} FROM unnest(%s::bytea[], %s::text[], "
                    "%s::text[], %s::bigint[], %s::text[]) WITH ORDINALITY AS v(i, d, b, t, k, n) ORDER BY n "
                    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                    (
                        [key for key, _ in rows],
                        [event.destination for _, event in rows],
                        [event.body for _, event in rows],
                        [event.event_time_ms for _, event in rows],
                        [event.order_key for _, event in rows],
                    ),
                ).fetchall()
            }
            stored: list[bool] = []
            for event in events:
                key = _key(event.message_id)
                stored.append(key in inserted)
                inserted.discard(key)  # a second copy in the same group is a duplicate of the first
            new = sum(stored)
            # Engage audience calls wait as memberships (see audience_store), not as events.
            folded = fold_pg(db, events, stored)
            self._add_to(db, {"received": new, "pending": new - folded, "duplicates": len(stored) - new})
        return stored

    def _add_to(self, db: psycopg.Connection[Any], amounts: dict[str, int]) -> None:
        changes = sorted((name, amount) for name, amount in amounts.items() if amount)
        if changes:
            db.execute(
                "INSERT INTO counters (name, shard, value) SELECT n, %s, a FROM unnest(%s::text[], %s::bigint[]) "
                "AS v(n, a) ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + EXCLUDED.value",
                (self.owner, [name for name, _ in changes], [amount for _, amount in changes]),
            )

    def claim(self, destination: str, limit: int, lease_seconds: float, *, by_key: bool = False) -> list[Pending]:
        """Lease up to limit due events of destination, the longest due first (by_key: up to limit whole keys)."""
        with self._transaction(durable=False) as db:
            if time.monotonic() >= self._next_reap:
                self._reap(db)
            if by_key:
                return self._claim_keys(db, destination, limit, lease_seconds)
            rows = db.execute(
                f"WITH due AS (SELECT message_id FROM outbox WHERE destination = %s AND state = 'pending' "
                f"AND next_attempt_at <= {NOW} ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"UPDATE outbox SET leased_by = %s, next_attempt_at = {NOW} + %s FROM due "
                "WHERE outbox.message_id = due.message_id "
                "RETURNING outbox.message_id, outbox.body, outbox.attempts, outbox.event_time",
                (destination, limit, self.owner, lease_seconds),
            ).fetchall()
        return [Pending(_id(row[0]), destination, row[1], row[2], int(row[3])) for row in rows]

    def _claim_keys(
        self, db: psycopg.Connection[Any], destination: str, limit: int, lease_seconds: float
    ) -> list[Pending]:
        # One claim of whole keys at a time per destination: two relays could otherwise each lease part of a key.
        db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (KEY_CLAIM_APP_KEY, destination))
        rows = db.execute(
            "WITH candidates AS (SELECT order_key FROM outbox WHERE destination = %(d)s AND state = 'pending' "
            f"AND next_attempt_at <= {NOW} ORDER BY next_attempt_at LIMIT %(scan)s), "
            "keys AS (SELECT DISTINCT c.order_key FROM candidates c WHERE c.order_key IS NOT NULL AND NOT EXISTS ("
            "  SELECT 1 FROM outbox h WHERE h.destination = %(d)s AND h.order_key = c.order_key "
            "  AND h.order_key IS NOT NULL "
            f"  AND h.state = 'pending' AND h.leased_by <> %(me)s AND h.next_attempt_at > {NOW}) LIMIT %(limit)s), "
            "picked AS (SELECT o.message_id FROM outbox o JOIN keys k ON o.order_key = k.order_key "
            "  WHERE o.destination = %(d)s AND o.state = 'pending' AND o.order_key IS NOT NULL FOR UPDATE OF o) "
            f"UPDATE outbox SET leased_by = %(me)s, next_attempt_at = {NOW} + %(lease)s FROM picked "
            "WHERE outbox.message_id = picked.message_id RETURNING outbox.message_id, outbox.body, outbox.attempts, "
            "outbox.event_time, outbox.order_key, outbox.seq",
            {
                "d": destination,
                "scan": limit * KEYS_SCAN,
                "me": self.owner,
                "limit": limit,
                "lease": lease_seconds,
            },
        ).fetchall()
        # Events without a key (stored damaged, say) among the same window: claimed one by one.
        rows += db.execute(
            f"WITH due AS (SELECT message_id FROM (SELECT message_id, order_key FROM outbox WHERE destination = %s "
            f"AND state = 'pending' AND next_attempt_at <= {NOW} ORDER BY next_attempt_at LIMIT %s) AS candidates "
            "WHERE order_key IS NULL) "
            f"UPDATE outbox SET leased_by = %s, next_attempt_at = {NOW} + %s FROM due "
            "WHERE outbox.message_id = due.message_id AND outbox.state = 'pending' RETURNING outbox.message_id, "
            "outbox.body, outbox.attempts, outbox.event_time, outbox.order_key, outbox.seq",
            (destination, limit, self.owner, lease_seconds),
        ).fetchall()
        return sorted(
            (Pending(_id(row[0]), destination, row[1], row[2], int(row[3]), row[4], int(row[5])) for row in rows),
            key=lambda item: item.sequence,
        )

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes of claimed events in one transaction, ending their leases."""
        delivered = sorted({_key(item.message_id) for item in outcomes if isinstance(item, Delivered)})
        retries = sorted(
            (_key(item.message_id), max(float(item.delay_seconds), 0.0), _text(item.reason))
            for item in outcomes
            if isinstance(item, RetryLater)
        )
        dead = sorted(
            (_key(item.message_id), item.status, _text(item.reason))
            for item in outcomes
            if isinstance(item, DeadLetter)
        )
        released = sorted({_key(item.message_id) for item in outcomes if isinstance(item, Released)})
        done = retried = died = 0
        with self._transaction(durable=False) as db:
            if delivered:
                done = db.execute(
                    # Only the messageId is still needed (to refuse a replay); the body was the bulk of the row.
                    "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, body = '', leased_by = NULL "
                    "WHERE message_id = ANY(%s::bytea[]) AND state = 'pending'",
                    (delivered,),
                ).rowcount
            if retries:
                # Only while the lease is still this relay's: otherwise another relay is trying it now.
                retried = db.execute(
                    f"UPDATE outbox SET attempts = attempts + 1, next_attempt_at = {NOW} + v.delay, "
                    "last_error = v.reason, leased_by = NULL "
                    "FROM unnest(%s::bytea[], %s::float8[], %s::text[]) AS v(id, delay, reason) "
                    "WHERE outbox.message_id = v.id AND state = 'pending' AND leased_by = %s",
                    ([r[0] for r in retries], [r[1] for r in retries], [r[2] for r in retries], self.owner),
                ).rowcount
            if released:
                db.execute(
                    f"UPDATE outbox SET next_attempt_at = {NOW}, leased_by = NULL "
                    "WHERE message_id = ANY(%s::bytea[]) AND state = 'pending' AND leased_by = %s",
                    (released, self.owner),
                )
            if dead:
                died = self._bury(db, dead)
            self._add_to(
                db,
                {
                    "delivered": max(done, 0),
                    "retried": max(retried, 0),
                    "dead_lettered": max(died, 0),
                    "pending": -max(done, 0) - max(died, 0),
                },
            )

    @staticmethod
    def _bury(db: psycopg.Connection[Any], dead: list[tuple[bytes, int, str]]) -> int:
        arrays = ([d[0] for d in dead], [d[1] for d in dead], [d[2] for d in dead])
        db.execute(
            f"INSERT INTO dead_letters (message_id, body, status, reason, failed_at) "
            f"SELECT o.message_id, o.body, v.status, v.reason, {NOW} FROM outbox o "
            "JOIN unnest(%s::bytea[], %s::integer[], %s::text[]) AS v(id, status, reason) ON o.message_id = v.id "
            "WHERE o.state = 'pending' ON CONFLICT (message_id) DO UPDATE SET body = EXCLUDED.body, "
            "status = EXCLUDED.status, reason = EXCLUDED.reason, failed_at = EXCLUDED.failed_at",
            arrays,
        )
        died: int = db.execute(
            "UPDATE outbox SET state = 'dead', body = '', leased_by = NULL, last_error = v.reason "
            "FROM unnest(%s::bytea[], %s::integer[], %s::text[]) AS v(id, status, reason) "
            "WHERE outbox.message_id = v.id AND state = 'pending'",
            arrays,
        ).rowcount
        return died

    def stats(self) -> dict[str, int]:
        """The counters in COUNTERS, summed over every relay; pending is how many events wait for delivery."""

        def read(db: psycopg.Connection[Any]) -> dict[str, int]:
            rows = db.execute("SELECT name, sum(value) FROM counters GROUP BY name").fetchall()
            return {str(row[0]): int(row[1]) for row in rows}

        counters = self._read(read)
        return {name: counters.get(name, 0) for name in COUNTERS}

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The most recent dead letters, newest first: messageId, status, reason."""

        def read(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT message_id, status, reason FROM dead_letters ORDER BY failed_at DESC LIMIT %s", (limit,)
            ).fetchall()

        return [{"messageId": _id(row[0]), "status": row[1], "reason": row[2]} for row in self._read(read)]

    def prune(self, before_ms: float, limit: int) -> int:
        """Forget up to limit settled events whose event time is before before_ms; how many."""
        with self._transaction(durable=False) as db:
            removed: int = db.execute(
                "DELETE FROM outbox WHERE message_id IN (SELECT message_id FROM outbox "
                "WHERE state <> 'pending' AND event_time < %s LIMIT %s FOR UPDATE SKIP LOCKED)",
                (before_ms, limit),
            ).rowcount
        return removed

    def prune_dead_letters(self, before: float, limit: int) -> int:
        """Forget up to limit dead letters that failed before `before` (seconds since the epoch); how many."""
        with self._transaction(durable=False) as db:
            removed: int = db.execute(
                "DELETE FROM dead_letters WHERE message_id IN (SELECT message_id FROM dead_letters "
                "WHERE failed_at < %s LIMIT %s FOR UPDATE SKIP LOCKED)",
                (before, limit),
            ).rowcount
        return removed

    def pending_by_destination(self) -> dict[str, tuple[int, float]]:
        """Per destination: how many events wait, and when the oldest of them was accepted (epoch seconds)."""

        def read(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT destination, count(*), min(created_at) FROM outbox WHERE state = 'pending' GROUP BY destination"
            ).fetchall()

        return {str(row[0]): (int(row[1]), float(row[2])) for row in self._read(read)}

    def empty_for_benchmark(self) -> None:
        """Delete every event, dead letter and count (bench-relay starts each run from an empty outbox)."""
        with self._transaction() as db:
            db.execute("TRUNCATE outbox, dead_letters, counters")

    def close(self) -> None:
        """Close every connection; this relay's leases go back to the others at once."""
        with self._write_lock:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break
