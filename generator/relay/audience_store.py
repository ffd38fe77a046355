"""Audience memberships in the outbox: the last one accepted per audience and visitor, and each audience's segment.

Engage calls are accepted like every other event (their messageId is kept, so a replay is a duplicate) and then
folded, in the same transaction, into `audience_members`: one row per audience and visitor holding the membership
wanted (`member`) and a `version` that grows with every call accepted for it. Whatever the order calls reach the
relays in, the row holds the one accepted last. A row is due while `version > sent_version`; claiming leases it
(one request at a time per visitor, even across relays), and a written outcome records the version it sent, so a
call accepted meanwhile makes the row due again with the newer membership.

`audience_segments` holds each audience's Pendo segment id once created (so every relay sharing the outbox uses
the same one), who is creating it (so only one relay does) and the audience's counts and last error.
This module holds what both outboxes share and the SQLite side; `pg_audience_store` the PostgreSQL side.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from generator.relay.audiences import AUDIENCES, stored_membership

if TYPE_CHECKING:
    from generator.relay.outbox import NewEvent

MembershipVerdict = Literal["done", "retry", "dead", "released"]


@dataclass(frozen=True)
class ClaimedMembership:
    """A leased membership row: the visitor, in or out, the version claimed and its failed attempts so far."""

    audience: str
    visitor: str
    member: bool
    version: int
    attempts: int


@dataclass(frozen=True)
class MembershipOutcome:
    """What became of a claimed membership (released: not tried, due again at once)."""

    claimed: ClaimedMembership
    verdict: MembershipVerdict
    delay_seconds: float = 0.0
    status: int = 0
    reason: str = ""


@dataclass(frozen=True)
class AudienceRow:
    """One audience as `audiences list` shows it."""

    audience: str
    segment_id: str | None
    added: int
    removed: int
    failed: int
    pending: int
    last_error: str | None


class AudienceStore(Protocol):
    """What the audiences deliverer and `audiences list` need from the outbox."""

    def due_audiences(self) -> list[str]:
        """Audiences with memberships due now."""

    def claim_memberships(self, audience: str, limit: int, lease_seconds: float) -> list[ClaimedMembership]:
        """Lease up to limit due memberships of an audience."""

    def settle_memberships(self, outcomes: Sequence[MembershipOutcome]) -> None:
        """Record outcomes of claimed memberships, ending their leases."""

    def stored_segment(self, audience: str) -> str | None:
        """The segment id created for the audience, if any."""

    def begin_creation(self, audience: str, lease_seconds: float) -> bool:
        """Whether this relay is now the one to create the audience's segment (nobody has, nobody is)."""

    def record_segment(self, audience: str, segment_id: str) -> str:
        """Keep a created segment id (unless one was kept first); the audience's segment id from now on."""

    def creation_failed(self, audience: str, reason: str) -> None:
        """Let the creation be tried again (by any relay), remembering why it failed."""

    def audience_rows(self) -> list[AudienceRow]:
        """Every audience seen, with its segment, counts, pending memberships and last error."""


def dead_letter_id(claimed: ClaimedMembership) -> str:
    """The dead letter's id of a membership that could not be written."""
    return f"audience:{claimed.audience}:{claimed.visitor}:v{claimed.version}"


def dead_letter_body(claimed: ClaimedMembership) -> str:
    """What the dead letter keeps of it."""
    return json.dumps({"audience": claimed.audience, "visitor": claimed.visitor, "member": claimed.member})


def latest_memberships(events: Sequence[NewEvent], stored: Sequence[bool]) -> list[tuple[str, str, bool]]:
    """The newly stored Engage calls' (audience, visitor, member), the last per audience and visitor, sorted.

    Sorted so that relays folding at once lock rows in the same order (no deadlock).
    """
    latest: dict[tuple[str, str], bool] = {}
    for event, new in zip(events, stored, strict=True):
        if new and event.destination == AUDIENCES:
            try:
                audience, visitor, member = stored_membership(event.body)
            except ValueError:
                continue  # the intake wrote it; cannot happen, and must not stop the other events
            latest.pop((audience, visitor), None)
            latest[(audience, visitor)] = member
    return sorted((audience, visitor, member) for (audience, visitor), member in latest.items())


def folded_ids(events: Sequence[NewEvent], stored: Sequence[bool]) -> list[str]:
    """The messageIds of the newly stored Engage calls."""
    pairs = zip(events, stored, strict=True)
    return [event.message_id for event, new in pairs if new and event.destination == AUDIENCES]


def counts_of(outcomes: Sequence[MembershipOutcome]) -> dict[str, tuple[int, int, int]]:
    """Per audience: memberships written in (added), out (removed), and refused for good (failed)."""
    counts: dict[str, list[int]] = {}
    for outcome in outcomes:
        row = counts.setdefault(outcome.claimed.audience, [0, 0, 0])
        if outcome.verdict == "done":
            row[0 if outcome.claimed.member else 1] += 1
        elif outcome.verdict == "dead":
            row[2] += 1
    return {audience: (row[0], row[1], row[2]) for audience, row in counts.items()}


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS audience_members (
    audience TEXT NOT NULL,
    visitor TEXT NOT NULL,
    member INTEGER NOT NULL,
    version INTEGER NOT NULL,
    sent_version INTEGER NOT NULL DEFAULT 0,
    leased INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (audience, visitor)
);
CREATE INDEX IF NOT EXISTS audience_members_due ON audience_members (audience, next_attempt_at)
    WHERE version > sent_version;
CREATE TABLE IF NOT EXISTS audience_segments (
    audience TEXT PRIMARY KEY,
    segment_id TEXT,
    creating_until REAL NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)
"""


# Each audience seen: segment, counts, memberships pending, and the last error (its own, else a membership's).
AUDIENCE_ROWS = (
    "SELECT s.audience, s.segment_id, s.added, s.removed, s.failed, "
    "(SELECT count(*) FROM audience_members m WHERE m.audience = s.audience AND m.version > m.sent_version), "
    "COALESCE(s.last_error, (SELECT m.last_error FROM audience_members m WHERE m.audience = s.audience "
    "AND m.last_error IS NOT NULL ORDER BY m.next_attempt_at DESC LIMIT 1)) "
    "FROM audience_segments s ORDER BY s.audience"
)


def prepare_sqlite(db: sqlite3.Connection, now: float) -> None:
    """Create the tables (inside the outbox's opening transaction); this process owns the file, so free its leases."""
    for statement in SQLITE_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(
        "UPDATE audience_members SET leased = 0, next_attempt_at = MIN(next_attempt_at, ?) WHERE leased = 1", (now,)
    )
    db.execute("UPDATE audience_segments SET creating_until = 0 WHERE segment_id IS NULL")


def fold_sqlite(db: sqlite3.Connection, events: Sequence[NewEvent], stored: Sequence[bool], now: float) -> int:
    """Fold newly stored Engage calls into their membership rows (inside add_many's transaction); how many calls."""
    latest = latest_memberships(events, stored)
    db.executemany(
        "INSERT INTO audience_members (audience, visitor, member, version, next_attempt_at) VALUES (?, ?, ?, 1, ?) "
        "ON CONFLICT (audience, visitor) DO UPDATE SET member = excluded.member, version = version + 1, "
        "next_attempt_at = CASE WHEN leased = 1 THEN next_attempt_at "
        "ELSE MIN(next_attempt_at, excluded.next_attempt_at) END",
        [(audience, visitor, int(member), now) for audience, visitor, member in latest],
    )
    db.executemany(
        "INSERT OR IGNORE INTO audience_segments (audience) VALUES (?)",
        [(audience,) for audience in sorted({row[0] for row in latest})],
    )
    folded = [
        (event.message_id,) for event, new in zip(events, stored, strict=True) if new and event.destination == AUDIENCES
    ]
    # The call itself is done with: only its messageId is kept, to refuse a replay.
    db.executemany("UPDATE outbox SET state = 'delivered', body = '' WHERE message_id = ?", folded)
    return len(folded)


class SqliteAudiences:
    """The AudienceStore methods of the SQLite outbox (mixed into SqliteOutbox, which provides the two below)."""

    def _transaction(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _read(self, query: str, parameters: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def due_audiences(self) -> list[str]:
        """Audiences with memberships due now."""
        rows = self._read(
            "SELECT DISTINCT audience FROM audience_members WHERE version > sent_version AND next_attempt_at <= ?",
            (time.time(),),
        )
        return [str(row[0]) for row in rows]

    def claim_memberships(self, audience: str, limit: int, lease_seconds: float) -> list[ClaimedMembership]:
        """Lease up to limit due memberships of an audience, the longest due first."""
        now = time.time()
        with self._transaction(durable=False) as db:
            rows = db.execute(
                "UPDATE audience_members SET leased = 1, next_attempt_at = ? WHERE rowid IN ("
                "SELECT rowid FROM audience_members WHERE audience = ? AND version > sent_version "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) "
                "RETURNING visitor, member, version, attempts",
                (now + lease_seconds, audience, now, limit),
            ).fetchall()
        return [ClaimedMembership(audience, str(row[0]), bool(row[1]), int(row[2]), int(row[3])) for row in rows]

    def settle_memberships(self, outcomes: Sequence[MembershipOutcome]) -> None:
        """Record outcomes of claimed memberships, ending their leases."""
        now = time.time()
        with self._transaction(durable=False) as db:
            for outcome in outcomes:
                claimed = outcome.claimed
                key = (claimed.audience, claimed.visitor)
                if outcome.verdict in ("done", "dead"):
                    if outcome.verdict == "dead":
                        db.execute(
                            "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?)",
                            (dead_letter_id(claimed), dead_letter_body(claimed), outcome.status, outcome.reason, now),
                        )
                    error = outcome.reason if outcome.verdict == "dead" else None
                    # A newer call accepted meanwhile leaves the row due (at once) with its membership.
                    db.execute(
                        "UPDATE audience_members SET sent_version = MAX(sent_version, ?), leased = 0, attempts = 0, "
                        "next_attempt_at = ?, last_error = ? WHERE audience = ? AND visitor = ?",
                        (claimed.version, now, error, *key),
                    )
                elif outcome.verdict == "retry":
                    db.execute(
                        "UPDATE audience_members SET leased = 0, attempts = attempts + 1, next_attempt_at = ?, "
                        "last_error = ? WHERE audience = ? AND visitor = ?",
                        (now + outcome.delay_seconds, outcome.reason, *key),
                    )
                else:
                    db.execute(
                        "UPDATE audience_members SET leased = 0, next_attempt_at = ? "
                        "WHERE audience = ? AND visitor = ?",
                        (now, *key),
                    )
            for audience, (added, removed, failed) in counts_of(outcomes).items():
                last = next((o.reason for o in reversed(outcomes) if o.claimed.audience == audience and o.reason), None)
                db.execute(
                    "UPDATE audience_segments SET added = added + ?, removed = removed + ?, failed = failed + ?, "
                    "last_error = COALESCE(?, last_error) WHERE audience = ?",
                    (added, removed, failed, last, audience),
                )

    def stored_segment(self, audience: str) -> str | None:
        """The segment id created for the audience, if any."""
        rows = self._read("SELECT segment_id FROM audience_segments WHERE audience = ?", (audience,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def begin_creation(self, audience: str, lease_seconds: float) -> bool:
        """Whether this relay is now the one to create the audience's segment (nobody has, nobody is)."""
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO audience_segments (audience) VALUES (?)", (audience,))
            won = db.execute(
                "UPDATE audience_segments SET creating_until = ? WHERE audience = ? AND segment_id IS NULL "
                "AND creating_until <= ?",
                (now + lease_seconds, audience, now),
            ).rowcount
        return bool(won)

    def record_segment(self, audience: str, segment_id: str) -> str:
        """Keep a created segment id (unless one was kept first); the audience's segment id from now on."""
        with self._transaction() as db:
            db.execute(
                "UPDATE audience_segments SET segment_id = COALESCE(segment_id, ?), creating_until = 0, "
                "last_error = NULL WHERE audience = ?",
                (segment_id, audience),
            )
            row = db.execute("SELECT segment_id FROM audience_segments WHERE audience = ?", (audience,)).fetchone()
        return str(row[0])

    def creation_failed(self, audience: str, reason: str) -> None:
        """Let the creation be tried again (by any relay), remembering why it failed."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE audience_segments SET creating_until = 0, last_error = ? WHERE audience = ? "
                "AND segment_id IS NULL",
                (reason, audience),
            )

    def audience_rows(self) -> list[AudienceRow]:
        """Every audience seen, with its segment, counts, pending memberships and last error."""
        rows = self._read(AUDIENCE_ROWS)
        return [audience_row(row) for row in rows]


def audience_row(row: Sequence[Any]) -> AudienceRow:
    """An AudienceRow from a query's columns (audience, segment, added, removed, failed, pending, last error)."""
    return AudienceRow(
        str(row[0]),
        None if row[1] is None else str(row[1]),
        int(row[2]),
        int(row[3]),
        int(row[4]),
        int(row[5]),
        None if row[6] is None else str(row[6]),
    )
