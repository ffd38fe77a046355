"""Whether intake can accept and store events now (/readyz), kept current by the supervised `outbox` task.

The task opens the outbox if it could not be opened at start (a full disk, a database server that is down), with
a growing delay between tries, and once it is open checks every second that it still takes writes: a SQLite
file's disk has space, the store answers a read. A write that failed while nothing has written since would leave
the relay saying "not ready" for good behind a load balancer that sends it nothing; once the store answers
again, that failure is cleared (the next write tells whether it really works).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from generator.errors import StorageError
from generator.relay.committer import Committer
from generator.relay.health import Health
from generator.relay.late_outbox import LateOutbox
from generator.relay.outbox import SqliteOutbox, disk_full

log = logging.getLogger("generator.relay")
CHECK_SECONDS = 1.0
# Between tries to open an outbox that could not be opened: from the first to the last, doubling.
OPEN_RETRY_SECONDS = (1.0, 30.0)
PART = "outbox"


class Readiness:
    """The reason intake cannot store now (None when it can)."""

    def __init__(self, outbox: LateOutbox, committer: Committer, health: Health) -> None:
        """Watch outbox through committer (every write goes through it); report to health."""
        self.outbox = outbox
        self.committer = committer
        self.health = health
        self._problem: str | None = None if outbox.store is not None else str(outbox.reason)
        self._opened: list[Callable[[], None]] = []

    def on_open(self, listener: Callable[[], None]) -> None:
        """Call listener once the outbox opens after the start."""
        self._opened.append(listener)

    @property
    def problem(self) -> str | None:
        """Why intake cannot store now, or None."""
        failure = self.committer.failure
        if failure is not None and self.committer.unsettled:
            return str(failure)  # the committer is retrying a write that keeps failing
        return self._problem

    async def watch(self, stop: asyncio.Event) -> None:
        """Until stop is set: open the outbox if needed, then keep the readiness current."""
        delay = OPEN_RETRY_SECONDS[0]
        while self.outbox.store is None and not stop.is_set():
            if await asyncio.to_thread(self.outbox.try_open):
                break
            self._problem = str(self.outbox.reason)
            self.health.report(PART, f"{self._problem}; not ready, trying again in {delay:g}s")
            log.warning("%s; not ready, trying again in %gs", self._problem, delay)
            await _sleep(stop, delay)
            delay = min(delay * 2, OPEN_RETRY_SECONDS[1])
        if self.outbox.store is not None and self.health.problem(PART):
            log.warning("outbox %s is open; ready", self.outbox.where)
            for listener in self._opened:
                listener()
        self.health.report(PART, None)
        while not stop.is_set():
            self._problem = await self._check()
            await _sleep(stop, CHECK_SECONDS)

    async def _check(self) -> str | None:
        store = self.outbox.store
        if isinstance(store, SqliteOutbox) and await self.committer.read(lambda: disk_full(store.path)):
            return f"outbox {store.path}: the disk is full"
        try:
            await self.committer.read(self.outbox.stats)
        except StorageError as error:
            return str(error)
        self.committer.forget_failure()
        return None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
