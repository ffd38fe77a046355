"""An outbox that may open after the relay starts: a full disk or a database server that is down is waited for.

The relay serves from the first second either way; until the store opens, every call raises the reason it could not
(a `StorageError`), so intake answers 503 with `Retry-After`, delivery waits and /readyz says why. The app's
`outbox` task calls `try_open` until it works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from generator.errors import OutboxUnavailable, StorageError
from generator.relay.audience_store import AudienceRow, ClaimedMembership, MembershipOutcome
from generator.relay.outbox import NewEvent, Outbox, Outcome, Pending


class LateOutbox:
    """The Outbox protocol (audience memberships included) over a store opened now or later by `opener`."""

    def __init__(self, opener: Callable[[], Outbox], where: str) -> None:
        """Try to open once now: only OutboxUnavailable is waited for; any other StorageError is raised."""
        self.where = where
        self._opener = opener
        self._lock = threading.Lock()
        self._store: Outbox | None = None
        self._closed = False
        self.reason: StorageError | None = None
        self.try_open()

    @property
    def store(self) -> Outbox | None:
        """The open store, or None while it could not be opened."""
        return self._store

    def try_open(self) -> bool:
        """Open the store if it is not open yet; whether it is. A store that is unavailable now keeps the reason."""
        with self._lock:
            if self._store is not None:
                return True
            if self._closed:
                return False
            try:
                self._store = self._opener()
            except OutboxUnavailable as error:
                self.reason = error
                return False
            self.reason = None
            return True

    def _open(self) -> Outbox:
        store = self._store
        if store is None:
            raise self.reason or OutboxUnavailable(f"outbox {self.where}: not open yet")
        return store

    def add_many(self, events: Sequence[NewEvent]) -> list[bool]:
        """See Outbox."""
        return self._open().add_many(events)

    def claim(self, destination: str, limit: int, lease_seconds: float, *, by_key: bool = False) -> list[Pending]:
        """See Outbox."""
        return self._open().claim(destination, limit, lease_seconds, by_key=by_key)

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        """See Outbox."""
        self._open().settle(outcomes)

    def stats(self) -> dict[str, int]:
        """See Outbox."""
        return self._open().stats()

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """See Outbox."""
        return self._open().dead_letters(limit)

    def prune(self, before_ms: float, limit: int) -> int:
        """See Outbox."""
        return self._open().prune(before_ms, limit)

    def prune_dead_letters(self, before: float, limit: int) -> int:
        """See Outbox."""
        return self._open().prune_dead_letters(before, limit)

    def pending_by_destination(self) -> dict[str, tuple[int, float]]:
        """See Outbox."""
        return self._open().pending_by_destination()

    def due_audiences(self) -> list[str]:
        """See AudienceStore."""
        return self._open().due_audiences()

    def claim_memberships(self, audience: str, limit: int, lease_seconds: float) -> list[ClaimedMembership]:
        """See AudienceStore."""
        return self._open().claim_memberships(audience, limit, lease_seconds)

    def settle_memberships(self, outcomes: Sequence[MembershipOutcome]) -> None:
        """See AudienceStore."""
        self._open().settle_memberships(outcomes)

    def stored_segment(self, audience: str) -> str | None:
        """See AudienceStore."""
        return self._open().stored_segment(audience)

    def begin_creation(self, audience: str, lease_seconds: float) -> bool:
        """See AudienceStore."""
        return self._open().begin_creation(audience, lease_seconds)

    def record_segment(self, audience: str, segment_id: str) -> str:
        """See AudienceStore."""
        return self._open().record_segment(audience, segment_id)

    def creation_failed(self, audience: str, reason: str) -> None:
        """See AudienceStore."""
        self._open().creation_failed(audience, reason)

    def audience_rows(self) -> list[AudienceRow]:
        """See AudienceStore."""
        return self._open().audience_rows()

    def close(self) -> None:
        """Close the store if it opened; no later try_open opens it."""
        with self._lock:
            self._closed = True
            if self._store is not None:
                self._store.close()
