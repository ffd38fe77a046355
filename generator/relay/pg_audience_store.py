"""Audience memberships in the PostgreSQL outbox that several relays share (see `audience_store` for the design).

Rows are locked in one order (sorted by audience and visitor) by every statement that writes several, so relays
folding, claiming and settling at once never deadlock. A lease belongs to the relay's owner key, as the outbox's
do: the leases and segment creations of a relay that has gone are handed back by `reap_audiences`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from generator.relay.audience_store import (
    AUDIENCE_ROWS,
    AudienceRow,
    ClaimedMembership,
    MembershipOutcome,
    audience_row,
    counts_of,
    dead_letter_body,
    dead_letter_id,
    folded_ids,
    latest_memberships,
)

if TYPE_CHECKING:
    from generator.relay.outbox import NewEvent

T = TypeVar("T")
NOW = "extract(epoch from clock_timestamp())"

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS audience_members (
    audience text NOT NULL,
    visitor text NOT NULL,
    member boolean NOT NULL,
    version bigint NOT NULL,
    sent_version bigint NOT NULL DEFAULT 0,
    leased_by integer,
    next_attempt_at double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    PRIMARY KEY (audience, visitor)
);
CREATE INDEX IF NOT EXISTS audience_members_due ON audience_members (audience, next_attempt_at)
    WHERE version > sent_version;
CREATE INDEX IF NOT EXISTS audience_members_leased ON audience_members (leased_by) WHERE leased_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS audience_segments (
    audience text PRIMARY KEY,
    segment_id text,
    creating_by integer,
    creating_until double precision NOT NULL DEFAULT 0,
    added bigint NOT NULL DEFAULT 0,
    removed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    last_error text
);
"""


def prepare_audiences(db: psycopg.Connection[Any]) -> None:
    """Create the tables if they are not there (inside the outbox's schema transaction, under its lock)."""
    db.execute(PG_SCHEMA)


def reap_audiences(db: psycopg.Connection[Any], live_owners: str, app_key: int) -> None:
    """Hand back the membership leases and segment creations of relays that are gone."""
    db.execute(
        f"UPDATE audience_members SET leased_by = NULL, next_attempt_at = least(next_attempt_at, {NOW}) "
        "WHERE (audience, visitor) IN (SELECT audience, visitor FROM audience_members WHERE leased_by IS NOT NULL "
        "AND leased_by NOT IN (" + live_owners + ") ORDER BY audience, visitor FOR UPDATE SKIP LOCKED)",
        {"app": app_key},
    )
    db.execute(
        "UPDATE audience_segments SET creating_by = NULL, creating_until = 0 WHERE segment_id IS NULL "
        "AND creating_by IS NOT NULL AND creating_by NOT IN (" + live_owners + ")",
        {"app": app_key},
    )


def fold_pg(db: psycopg.Connection[Any], events: Sequence[NewEvent], stored: Sequence[bool]) -> int:
    """Fold newly stored Engage calls into their membership rows (inside add_many's transaction); how many calls."""
    latest = latest_memberships(events, stored)
    if latest:
        db.execute(
            "INSERT INTO audience_members (audience, visitor, member, version, next_attempt_at) "
            f"SELECT a, v, m, 1, {NOW} FROM unnest(%s::text[], %s::text[], %s::boolean[]) AS x(a, v, m) "
            "ORDER BY a, v ON CONFLICT (audience, visitor) DO UPDATE SET member = EXCLUDED.member, "
            "version = audience_members.version + 1, next_attempt_at = CASE "
            "WHEN audience_members.leased_by IS NOT NULL THEN audience_members.next_attempt_at "
            "ELSE least(audience_members.next_attempt_at, EXCLUDED.next_attempt_at) END",
            ([row[0] for row in latest], [row[1] for row in latest], [row[2] for row in latest]),
        )
        db.execute(
            "INSERT INTO audience_segments (audience) SELECT DISTINCT unnest(%s::text[]) ORDER BY 1 "
            "ON CONFLICT (audience) DO NOTHING",
            (sorted({row[0] for row in latest}),),
        )
    folded = folded_ids(events, stored)
    if folded:
        # The call itself is done with: only its messageId is kept, to refuse a replay.
        db.execute(
            "UPDATE outbox SET state = 'delivered', body = '' WHERE message_id = ANY(%s::bytea[])",
            ([message_id.encode("utf-8", "surrogatepass") for message_id in folded],),
        )
    return len(folded)


class PostgresAudiences:
    """The AudienceStore methods of the PostgreSQL outbox (mixed into PostgresOutbox, which provides the rest)."""

    owner: int

    def _transaction(self, *, durable: bool = True) -> AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError

    def _read(self, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        raise NotImplementedError

    def _reap_if_due(self, db: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def due_audiences(self) -> list[str]:
        """Audiences with memberships due now."""

        def read(db: psycopg.Connection[Any]) -> list[str]:
            rows = db.execute(
                "SELECT DISTINCT audience FROM audience_members WHERE version > sent_version "
                f"AND next_attempt_at <= {NOW}"
            ).fetchall()
            return [str(row[0]) for row in rows]

        return self._read(read)

    def claim_memberships(self, audience: str, limit: int, lease_seconds: float) -> list[ClaimedMembership]:
        """Lease up to limit due memberships of an audience, the longest due first."""
        with self._transaction(durable=False) as db:
            self._reap_if_due(db)
            rows = db.execute(
                "WITH due AS (SELECT audience, visitor FROM audience_members WHERE audience = %s "
                f"AND version > sent_version AND next_attempt_at <= {NOW} ORDER BY next_attempt_at LIMIT %s "
                f"FOR UPDATE SKIP LOCKED) UPDATE audience_members m SET leased_by = %s, next_attempt_at = {NOW} + %s "
                "FROM due WHERE m.audience = due.audience AND m.visitor = due.visitor "
                "RETURNING m.visitor, m.member, m.version, m.attempts",
                (audience, limit, self.owner, lease_seconds),
            ).fetchall()
        return [ClaimedMembership(audience, str(row[0]), bool(row[1]), int(row[2]), int(row[3])) for row in rows]

    def settle_memberships(self, outcomes: Sequence[MembershipOutcome]) -> None:
        """Record outcomes of claimed memberships, ending their leases (only this relay's own)."""
        ordered = sorted(outcomes, key=lambda item: (item.claimed.audience, item.claimed.visitor))
        with self._transaction(durable=False) as db:
            for outcome in ordered:
                self._settle_one(db, outcome)
            for audience, (added, removed, failed) in sorted(counts_of(outcomes).items()):
                last = next((o.reason for o in reversed(outcomes) if o.claimed.audience == audience and o.reason), None)
                db.execute(
                    "UPDATE audience_segments SET added = added + %s, removed = removed + %s, failed = failed + %s, "
                    "last_error = COALESCE(%s, last_error) WHERE audience = %s",
                    (added, removed, failed, _text(last), audience),
                )

    def _settle_one(self, db: psycopg.Connection[Any], outcome: MembershipOutcome) -> None:
        claimed = outcome.claimed
        mine = f"CASE WHEN leased_by = {int(self.owner)} THEN NULL ELSE leased_by END"
        key = (claimed.audience, claimed.visitor)
        if outcome.verdict in ("done", "dead"):
            if outcome.verdict == "dead":
                db.execute(
                    f"INSERT INTO dead_letters (message_id, body, status, reason, failed_at) "
                    f"VALUES (%s, %s, %s, %s, {NOW}) ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status, "
                    "reason = EXCLUDED.reason, failed_at = EXCLUDED.failed_at",
                    (
                        dead_letter_id(claimed).encode("utf-8", "surrogatepass"),
                        dead_letter_body(claimed),
                        outcome.status,
                        _text(outcome.reason),
                    ),
                )
            # A newer call accepted meanwhile leaves the row due (at once) with its membership.
            db.execute(
                f"UPDATE audience_members SET sent_version = greatest(sent_version, %s), leased_by = {mine}, "
                f"attempts = 0, next_attempt_at = CASE WHEN leased_by = %s OR leased_by IS NULL THEN {NOW} "
                "ELSE next_attempt_at END, last_error = %s WHERE audience = %s AND visitor = %s",
                (claimed.version, self.owner, _text(outcome.reason) if outcome.verdict == "dead" else None, *key),
            )
        elif outcome.verdict == "retry":
            db.execute(
                f"UPDATE audience_members SET leased_by = NULL, attempts = attempts + 1, next_attempt_at = {NOW} + %s, "
                "last_error = %s WHERE audience = %s AND visitor = %s AND leased_by = %s",
                (max(outcome.delay_seconds, 0.0), _text(outcome.reason), *key, self.owner),
            )
        else:
            db.execute(
                f"UPDATE audience_members SET leased_by = NULL, next_attempt_at = {NOW} "
                "WHERE audience = %s AND visitor = %s AND leased_by = %s",
                (*key, self.owner),
            )

    def stored_segment(self, audience: str) -> str | None:
        """The segment id created for the audience, if any."""

        def read(db: psycopg.Connection[Any]) -> str | None:
            row = db.execute("SELECT segment_id FROM audience_segments WHERE audience = %s", (audience,)).fetchone()
            return str(row[0]) if row and row[0] is not None else None

        return self._read(read)

    def begin_creation(self, audience: str, lease_seconds: float) -> bool:
        """Whether this relay is now the one to create the audience's segment (nobody has, nobody is)."""
        with self._transaction() as db:
            self._reap_if_due(db)  # a creator that died hands its creation back
            db.execute("INSERT INTO audience_segments (audience) VALUES (%s) ON CONFLICT DO NOTHING", (audience,))
            # Two relays at once: the second waits for the first's row lock, then sees it creating.
            won = db.execute(
                f"UPDATE audience_segments SET creating_by = %s, creating_until = {NOW} + %s WHERE audience = %s "
                f"AND segment_id IS NULL AND (creating_by IS NULL OR creating_until <= {NOW}) RETURNING 1",
                (self.owner, lease_seconds, audience),
            ).fetchone()
        return won is not None

    def record_segment(self, audience: str, segment_id: str) -> str:
        """Keep a created segment id (unless one was kept first); the audience's segment id from now on."""
        with self._transaction() as db:
            row = db.execute(
                "UPDATE audience_segments SET segment_id = COALESCE(segment_id, %s), creating_by = NULL, "
                "creating_until = 0, last_error = NULL WHERE audience = %s RETURNING segment_id",
                (segment_id, audience),
            ).fetchone()
        return str(row[0]) if row else segment_id

    def creation_failed(self, audience: str, reason: str) -> None:
        """Let the creation be tried again (by any relay), remembering why it failed."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE audience_segments SET creating_by = NULL, creating_until = 0, last_error = %s "
                "WHERE audience = %s AND segment_id IS NULL",
                (_text(reason), audience),
            )

    def audience_rows(self) -> list[AudienceRow]:
        """Every audience seen, with its segment, counts, pending memberships and last error."""

        def read(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            return db.execute(AUDIENCE_ROWS).fetchall()

        return [audience_row(row) for row in self._read(read)]


def _text(value: str | None) -> str | None:
    """What PostgreSQL's text can hold: no NUL, valid UTF-8 (a reason may quote any bytes Pendo sent)."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
