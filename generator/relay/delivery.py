"""Deliver the outbox: per destination, a paused-or-not state and an adaptive number of requests in flight.

A destination is one endpoint with its own outbox queue (the Track Events API today; Pendo's metadata API can be
another). A 429, or a 503 with Retry-After, pauses everything to that destination and halves how many requests it
gets at once; each success adds back a little (AIMD). Other failures back off per event. Nothing one event does
(an unencodable body, an exception) can stop the others: the event gets an outcome and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from generator.errors import StorageError
from generator.relay.committer import Committer
from generator.relay.convert import PENDO_MAX_AGE_MS, TOO_OLD
from generator.relay.health import Health
from generator.relay.outbox import DeadLetter, Delivered, Outcome, Pending, Released, RetryLater

log = logging.getLogger("generator.relay")
TRACK = "track"
# Answers that say the relay is misconfigured (secret, region URL) or Pendo is unwell, not that the event
# is bad: the event waits and is retried, and /healthz names the problem, rather than every event being
# dead-lettered until someone fixes the setting.
SETUP_PROBLEMS = {
    401: "Pendo refused the Track Event Shared Secret: check PENDO_TRACK_EVENT_SECRET",
    403: "Pendo refused the Track Event Shared Secret: check PENDO_TRACK_EVENT_SECRET",
    404: "Pendo has no Track Events API at this URL: check the config's region or --pendo-url",
}
THROTTLED = {429, 503}
RETRIED_STATUSES = {*SETUP_PROBLEMS, 408, 425, *THROTTLED}
# 2**30 times any sane first delay is far past any cap; the exponent stops growing there.
MAX_EXPONENT = 30


@dataclass(frozen=True)
class Destination:
    """One endpoint: the outbox queue it drains, where it posts, with which headers, how many at once at most."""

    name: str
    url: str
    headers: Mapping[str, str]
    max_concurrency: int = 4


def track_destination(url: str, secret: str, concurrency: int = 4) -> Destination:
    """Pendo's Track Events API."""
    headers = {"x-pendo-integration-key": secret, "content-type": "application/json"}
    return Destination(TRACK, url, headers, concurrency)


@dataclass(frozen=True)
class DeliverySettings:
    """How to send."""

    timeout_seconds: float = 10.0
    first_retry_seconds: float = 0.5
    max_retry_seconds: float = 60.0
    poll_seconds: float = 0.5
    # Longer than any wait a claimed event can have in memory (a pause, then a request's timeout).
    lease_seconds: float = 300.0
    claim_batch: int = 64
    # Answered requests whose outcome is not yet written: a crash sends them again, so this bounds, with
    # the requests in flight, what a crash can duplicate.
    max_unrecorded: int = 16


def backoff_seconds(attempts: int, settings: DeliverySettings) -> float:
    """Exponential backoff with jitter, bounded for any attempt count."""
    exponent = min(max(attempts, 0), MAX_EXPONENT)
    exponential = min(settings.first_retry_seconds * 2.0**exponent, settings.max_retry_seconds)
    # Jitter keeps many relays that failed together from retrying together.
    return min(exponential * random.uniform(0.8, 1.2), settings.max_retry_seconds)


def retry_after_seconds(value: str | None, settings: DeliverySettings) -> float | None:
    """The server's Retry-After (seconds or an HTTP date) within [0, max_retry_seconds]; None if unusable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
        seconds = max(seconds, 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, settings.max_retry_seconds)


@dataclass
class DestinationState:
    """What the deliverer knows about one destination now."""

    destination: Destination
    window: float = 0.0  # requests allowed in flight (AIMD); set from max_concurrency
    in_flight: int = 0
    paused_until: float = 0.0  # time.monotonic()
    throttles: int = 0  # 429s in a row
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        """Start at full concurrency."""
        self.window = float(self.destination.max_concurrency)

    @property
    def capacity(self) -> int:
        """How many more requests may start now."""
        return max(int(self.window) - self.in_flight, 0)

    def succeeded(self) -> None:
        """Additive increase: about one more in flight per window's worth of successes."""
        self.throttles = 0
        self.window = min(float(self.destination.max_concurrency), self.window + 1.0 / self.window)

    def throttle(self, seconds: float) -> None:
        """Pause everything to this destination and halve the window (once per pause)."""
        now = time.monotonic()
        if now >= self.paused_until:
            self.window = max(1.0, self.window / 2)
            self.throttles += 1
        self.paused_until = max(self.paused_until, now + seconds)


class Deliverer:
    """Sends what is due to each destination; run() is its background task."""

    def __init__(
        self, committer: Committer, destinations: list[Destination], settings: DeliverySettings, health: Health
    ) -> None:
        """Deliver from committer's outbox to destinations."""
        self.committer = committer
        self.settings = settings
        self.health = health
        self.states = [DestinationState(destination) for destination in destinations]
        committer.on_settled(self.wake)

    def wake(self) -> None:
        """New events may be due."""
        for state in self.states:
            state.changed.set()

    def paused(self) -> dict[str, float]:
        """Seconds left of each destination's pause."""
        return seconds_paused(self.states)

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set: one loop per destination."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        connector = aiohttp.TCPConnector(limit=sum(s.destination.max_concurrency for s in self.states))
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._drain(session, state, stop) for state in self.states))

    async def _drain(self, session: aiohttp.ClientSession, state: DestinationState, stop: asyncio.Event) -> None:
        waiting: deque[Pending] = deque()
        sending: set[asyncio.Task[None]] = set()
        part = f"destination {state.destination.name}"
        try:
            while not stop.is_set():
                # Cleared before looking, so a send that finishes meanwhile still wakes the wait below.
                state.changed.clear()
                pause = state.paused_until - time.monotonic()
                if pause > 0:
                    await self._wait(state, stop, pause)
                    continue
                if self.committer.failure is not None and self.committer.unsettled:
                    # Outcomes cannot be recorded: sending more would only widen what a crash sends twice.
                    await self._wait(state, stop, self.settings.poll_seconds)
                    continue
                if len(waiting) < state.capacity:
                    try:
                        want = max(self.settings.claim_batch, state.capacity) - len(waiting)
                        lease = self.settings.lease_seconds
                        waiting.extend(await self.committer.claim(state.destination.name, want, lease))
                    except StorageError:
                        # The committer shows it in /healthz; delivery waits for the storage.
                        await self._wait(state, stop, self.settings.poll_seconds)
                        continue
                    self.health.report("deliverer", None)
                    if not waiting and state.in_flight == 0 and self.health.problem(part).startswith("paused"):
                        self.health.report(part, None)
                while waiting and state.capacity > 0 and self.committer.unsettled < self.settings.max_unrecorded:
                    state.in_flight += 1
                    task = asyncio.create_task(self._send(session, state, waiting.popleft()))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                await self._wait(state, stop, self.settings.poll_seconds)
        finally:
            await finish_sends(sending, stop, self.settings.timeout_seconds)
            for item in waiting:
                self.committer.settle(Released(item.message_id))

    @staticmethod
    async def _wait(state: DestinationState, stop: asyncio.Event, seconds: float) -> None:
        changed = asyncio.create_task(state.changed.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({changed, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        stopping.cancel()

    async def _send(self, session: aiohttp.ClientSession, state: DestinationState, item: Pending) -> None:
        outcome: Outcome = Released(item.message_id)
        try:
            outcome = await self._attempt(session, state, item)
        except asyncio.CancelledError:
            # Stopped mid-request: it may have arrived, and is sent again (the at-least-once window).
            outcome = Released(item.message_id)
            raise
        except Exception as error:
            log.exception("delivering %s failed unexpectedly", item.message_id)
            delay = backoff_seconds(item.attempts, self.settings)
            outcome = RetryLater(item.message_id, delay, f"unexpected {type(error).__name__}: {error}"[:500])
        finally:
            state.in_flight -= 1
            self.committer.settle(outcome)
            state.changed.set()

    async def _attempt(self, session: aiohttp.ClientSession, state: DestinationState, item: Pending) -> Outcome:
        destination = state.destination
        part = f"destination {destination.name}"
        if item.event_time_ms < time.time() * 1000 - PENDO_MAX_AGE_MS:
            return DeadLetter(item.message_id, 0, f"not delivered within 7 days: {TOO_OLD}")
        try:
            data = item.body.encode("utf-8")
        except UnicodeEncodeError as error:
            return DeadLetter(item.message_id, 0, f"the stored body cannot be sent as UTF-8: {error}"[:500])
        try:
            async with session.post(destination.url, data=data, headers=destination.headers) as response:
                status = response.status
                text = (await response.content.read(500)).decode("utf-8", "replace")
                retry_after = response.headers.get("retry-after")
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = f"{type(error).__name__}: {error}"[:300] if str(error) else type(error).__name__
            if isinstance(error, TimeoutError):
                reason = f"no answer within {self.settings.timeout_seconds:g}s"
            self.health.report(part, f"{destination.url} fails: {reason}; retrying")
            return RetryLater(item.message_id, backoff_seconds(item.attempts, self.settings), reason)
        if status < 300:
            state.succeeded()
            self.health.report(part, None)
            return Delivered(item.message_id)
        if status == 429 or (status in THROTTLED and retry_after is not None):
            wait = retry_after_seconds(retry_after, self.settings)
            if wait is None:
                wait = backoff_seconds(state.throttles, self.settings)
            state.throttle(wait)
            self.health.report(
                part,
                f"paused: HTTP {status} from {destination.url}; all delivery to it waits {wait:.1f}s, "
                f"then at most {int(state.window)} requests at once",
            )
            return RetryLater(item.message_id, wait, f"HTTP {status}")
        if status in RETRIED_STATUSES or status >= 500:
            problem = SETUP_PROBLEMS.get(status, "retrying")
            self.health.report(part, f"HTTP {status} from {destination.url}: {problem}")
            return RetryLater(item.message_id, backoff_seconds(item.attempts, self.settings), f"HTTP {status}")
        return DeadLetter(item.message_id, status, text)


def seconds_paused(states: Sequence[DestinationState]) -> dict[str, float]:
    """Seconds left of each paused destination's pause, by destination name."""
    now = time.monotonic()
    return {s.destination.name: round(s.paused_until - now, 3) for s in states if s.paused_until > now}


async def finish_sends(sending: set[asyncio.Task[None]], stop: asyncio.Event, timeout_seconds: float) -> None:
    """End a delivery loop's requests under way: let them finish when stopping, else cancel them.

    Stopping, requests under way get their answers (a cancelled one may have arrived, and would be sent again
    after the restart).
    """
    if sending and stop.is_set():
        await asyncio.wait(set(sending), timeout=timeout_seconds)
    for task in list(sending):
        task.cancel()
    await asyncio.gather(*sending, return_exceptions=True)
