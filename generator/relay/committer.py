"""Every write to the outbox, off the event loop, in group commits.

Requests that arrive while a transaction is being synced wait together and are stored by the next one: one sync
for many events, each answered only once its own transaction is on disk. Outcomes of deliveries are queued the
same way and always written before the next claim, so a lease can never run out for an event whose outcome is
still in memory. When a write fails, outcomes stay queued and are retried; claims and new events are refused
(with the reason) until storage works again: delivery pauses instead of sending the same events again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from generator.errors import StorageError
from generator.relay.audience_store import MembershipOutcome
from generator.relay.health import Health
from generator.relay.outbox import NewEvent, Outbox, Outcome, Pending

log = logging.getLogger("generator.relay")
T = TypeVar("T")
STORAGE = "storage"
# How long to wait between attempts to write queued outcomes while storage fails.
RETRY_SECONDS = (0.1, 5.0)
# So a flood of intake cannot make one transaction (and the answers waiting on it) arbitrarily long.
MAX_EVENTS_PER_COMMIT = 20_000


@dataclass
class _Add:
    events: Sequence[NewEvent]
    answer: asyncio.Future[list[bool]]


@dataclass
class _Claim:
    destination: str
    limit: int
    lease_seconds: float
    answer: asyncio.Future[list[Pending]]
    by_key: bool = False


@dataclass
class _Queue:
    adds: list[_Add] = field(default_factory=list)
    claims: list[_Claim] = field(default_factory=list)
    outcomes: list[Outcome | MembershipOutcome] = field(default_factory=list)


class Committer:
    """The one writer of an outbox; run() is its background task."""

    def __init__(self, outbox: Outbox, health: Health) -> None:
        """Write to outbox; report storage trouble to health."""
        self.outbox = outbox
        self.health = health
        self._queue = _Queue()
        self._work = asyncio.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-writer")
        self._reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbox-reader")
        self._failing_since: float | None = None
        self._failure: StorageError | None = None
        # Intake's group commits: how many transactions stored how many events (shown in /metrics).
        self.intake_commits = 0
        self.intake_events = 0
        self._listeners: list[Callable[[], None]] = []
        # When the write under way started (None between writes): one that never ends means a hung disk or server.
        self.writing_since: float | None = None

    def on_settled(self, listener: Callable[[], None]) -> None:
        """Call listener whenever queued outcomes have been written."""
        self._listeners.append(listener)

    @property
    def failure(self) -> StorageError | None:
        """The storage error that currently stops writes, if any."""
        return self._failure

    @property
    def unsettled(self) -> int:
        """Outcomes not yet on disk."""
        return len(self._queue.outcomes)

    async def add(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store events durably (sharing a transaction with whatever else is waiting); StorageError if not."""
        if self._failure is not None and self._queue.outcomes:
            raise self._failure
        answer: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._queue.adds.append(_Add(events, answer))
        self._work.set()
        return await answer

    async def claim(self, destination: str, limit: int, lease_seconds: float, *, by_key: bool = False) -> list[Pending]:
        """Lease due events (whole keys with by_key) once queued outcomes are written; StorageError if not."""
        if self._failure is not None and self._queue.outcomes:
            raise self._failure
        answer: asyncio.Future[list[Pending]] = asyncio.get_running_loop().create_future()
        self._queue.claims.append(_Claim(destination, limit, lease_seconds, answer, by_key))
        self._work.set()
        return await answer

    def settle(self, outcome: Outcome | MembershipOutcome) -> None:
        """Queue an outcome; it is written before the next claim, and retried until it is."""
        self._queue.outcomes.append(outcome)
        self._work.set()

    async def write(self, action: Callable[[], T]) -> T:
        """Run any other write (say, a prune) on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, action)

    async def read(self, action: Callable[[], T]) -> T:
        """Run a read off the event loop; it does not wait for writes."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, action)

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set and nothing is queued: write what is queued, in as few transactions as possible."""
        while not (stop.is_set() and not self._has_work()):
            if not self._has_work():
                self._work.clear()
                stopping = asyncio.create_task(stop.wait())
                working = asyncio.create_task(self._work.wait())
                await asyncio.wait({stopping, working}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                working.cancel()
                continue
            self.writing_since = time.monotonic()
            try:
                await self._commit_once()
            except StorageError as error:
                self.writing_since = None
                await self._failed(error, stop)
            except BaseException as error:
                # Whatever broke the committer, nobody may wait forever for an answer it will not give.
                crash = _as_storage_error(error)
                _fail(self._queue.adds, crash)
                _fail(self._queue.claims, crash)
                self._queue.adds, self._queue.claims = [], []
                self.writing_since = None
                raise
            else:
                self.writing_since = None
                if self._failure is not None:
                    log.warning("outbox writes work again")
                self._failure = None
                self._failing_since = None
                self.health.report(STORAGE, None)
                self.health.report("committer", None)

    def _has_work(self) -> bool:
        queue = self._queue
        return bool(queue.adds or queue.claims or queue.outcomes)

    async def _commit_once(self) -> None:
        queue = self._queue
        if queue.outcomes:
            outcomes = list(queue.outcomes)
            await self.write(lambda: _settle_all(self.outbox, outcomes))
            del queue.outcomes[: len(outcomes)]
            for listener in self._listeners:
                listener()
        if queue.adds:
            adds = _take_adds(queue)
            try:
                stored = await self.write(lambda: self.outbox.add_many([e for add in adds for e in add.events]))
            except BaseException as error:
                _fail(adds, _as_storage_error(error))
                raise
            self.intake_commits += 1
            self.intake_events += len(stored)
            start = 0
            for add in adds:
                _answer(add.answer, stored[start : start + len(add.events)])
                start += len(add.events)
        if queue.claims:
            claims, queue.claims = queue.claims, []
            for position, claim in enumerate(claims):
                try:
                    leased = await self.write(
                        lambda c=claim: self.outbox.claim(  # type: ignore[misc]
                            c.destination, c.limit, c.lease_seconds, by_key=c.by_key
                        )
                    )
                except BaseException as error:
                    _fail(claims[position:], _as_storage_error(error))
                    raise
                _answer(claim.answer, leased)

    async def _failed(self, error: StorageError, stop: asyncio.Event) -> None:
        first = self._failure is None
        self._failure = error
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        queue = self._queue
        # Waiting callers get the reason now rather than after the storage comes back.
        _fail(queue.adds, error)
        _fail(queue.claims, error)
        queue.adds, queue.claims = [], []
        held = len(queue.outcomes)
        self.health.report(
            STORAGE, f"outbox writes fail: {error}; delivery paused, {held} outcomes held in memory, retrying"
        )
        if first:
            log.error("outbox writes fail: %s; delivery paused until they work again", error)
        if not queue.outcomes:
            return  # nothing to retry: the next add or claim tries the storage again
        elapsed = now - self._failing_since
        delay = min(RETRY_SECONDS[1], max(RETRY_SECONDS[0], elapsed / 4))
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
        if stop.is_set() and queue.outcomes:
            # Shutting down with outcomes that cannot be written: those events are sent again after the
            # restart (the documented at-least-once window); nothing is lost.
            log.error("stopping with %d delivery outcomes unwritten: %s", len(queue.outcomes), error)
            queue.outcomes.clear()

    def forget_failure(self) -> None:
        """The storage answers again and no outcome waits to be written: clear the failure the last write left.

        Without this, a relay that refused intake while its disk was full would say so until the next write, which
        a load balancer that took it out of service never sends.
        """
        if self._failure is not None and not self._queue.outcomes:
            log.info("the outbox answers again")
            self._failure = None
            self._failing_since = None
            self.health.report(STORAGE, None)

    def close(self) -> None:
        """Stop the worker threads."""
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)


def _settle_all(outbox: Outbox, outcomes: Sequence[Outcome | MembershipOutcome]) -> None:
    """Events' outcomes, then audience memberships' (each kind in one transaction)."""
    events = [outcome for outcome in outcomes if not isinstance(outcome, MembershipOutcome)]
    memberships = [outcome for outcome in outcomes if isinstance(outcome, MembershipOutcome)]
    if events:
        outbox.settle(events)
    if memberships:
        outbox.settle_memberships(memberships)


def _take_adds(queue: _Queue) -> list[_Add]:
    taken: list[_Add] = []
    count = 0
    while queue.adds and (not taken or count + len(queue.adds[0].events) <= MAX_EVENTS_PER_COMMIT):
        add = queue.adds.pop(0)
        taken.append(add)
        count += len(add.events)
    return taken


def _as_storage_error(error: BaseException) -> StorageError:
    if isinstance(error, StorageError):
        return error
    return StorageError(f"the outbox writer failed ({type(error).__name__}: {error}); try again")


def _answer(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(waiting: Sequence[_Add | _Claim], error: StorageError) -> None:
    for item in waiting:
        if not item.answer.done():
            item.answer.set_exception(error)
