"""The delivery engine: one place that decides when a request may go to a destination, for every deliverer.

A *destination* is one endpoint of Pendo's (the Track Events API; one metadata kind and field group; a segment
API). Its state lives in a `DestinationState` that every deliverer uses:

* a brake: after `brake_after` destination failures in a row (HTTP 5xx, 429, 408, 425, a refused key or URL,
  a timeout, a refused or dropped connection), or at once on a 429 (or a 503 with Retry-After), the destination
  is *open*: nothing is sent to it until its next probe, when one request goes (*probing*). A probe that
  succeeds closes the brake and the destination drains at full speed; one that fails opens it again for longer
  (growing, capped, jittered intervals), or for as long as Pendo's Retry-After says; one that hangs past the
  longest interval does not hold up the next probe;
* a token bucket that keeps it under `max_rate` requests per second;
* an AIMD window of requests in flight: halved when the brake opens, one more per window's worth of successes.

A deliverer (`Deliverer`) knows one kind of data and Pendo's API for it; it never decides *when* to send:

* `fill(destination, room)` claims entries from the outbox (through the committer) into its own memory, as many
  as it wants given `room` (how many requests could start now; 0 while the brake is open);
* `take(destination, now)` hands the engine the next request's job (any object: a claimed event, a planned bulk
  body), or None when nothing is ready; `next_due` says when something held back (a window) will be;
* `send(job, channel)` makes the job's request(s) with `channel.post(...)`, which waits for the rate limit and
  feeds Pendo's answer (a `Reply`) to the brake, then reads the answer and settles the job's entries with the
  committer (`Delivered`, `RetryLater` with `channel.retry_delay(...)`, `DeadLetter`, or `Released`), whatever
  happens, even when cancelled;
* `release(destination)` settles as `Released` whatever it still holds when delivery stops;
* `explain(reply)` (optional) says in a sentence what a failed answer means, for /healthz.

The engine runs one loop per destination of each deliverer (`run`), starts at most what the brake, the window
and the bucket allow, and shows every destination's state (`describe`) in /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar

import aiohttp

from generator.errors import StorageError
from generator.relay.committer import Committer
from generator.relay.health import Health

log = logging.getLogger("generator.relay")
JobT = TypeVar("JobT")
BrakeState = Literal["closed", "open", "probing"]
# 2**30 times any sane first delay is far past any cap; the exponent stops growing there.
MAX_EXPONENT = 30
# Answers that say the destination cannot take requests now (or cannot take them from this relay as set up):
# each one counts towards the brake. Other answers (2xx, a 400 for one body) say Pendo is there and reading.
FAILING_STATUSES = {401, 403, 404, 408, 425, 429}
THROTTLED = {429, 503}


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
    # Requests per second to one destination from this relay at most (Pendo limits each endpoint).
    max_rate: float = 50.0
    # Destination failures in a row that open the brake.
    brake_after: int = 3
    # The brake's probe intervals: doubling from the first, never over the cap (so a recovered Pendo is
    # found, and drained, within a few seconds).
    first_probe_seconds: float = 0.5
    max_probe_seconds: float = 3.0


@dataclass(frozen=True)
class Destination:
    """One endpoint: its name (its outbox queue and /healthz name), where it posts, how many at once at most."""

    name: str
    url: str
    headers: Mapping[str, str]
    max_concurrency: int = 4


@dataclass(frozen=True)
class Reply:
    """Pendo's answer to one request; status 0 when there was none (`error` says why)."""

    status: int
    text: str = ""
    retry_after: str | None = None
    error: str = ""

    @property
    def failed(self) -> bool:
        """Whether the answer counts against the destination (towards its brake)."""
        return self.status == 0 or self.status >= 500 or self.status in FAILING_STATUSES

    @property
    def throttled(self) -> bool:
        """Pendo asked the relay to slow down: the brake opens at once."""
        return self.status == 429 or (self.status in THROTTLED and self.retry_after is not None)


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


class TokenBucket:
    """At most `rate` starts per second on average, with a burst of a tenth of a second's worth (at least one)."""

    def __init__(self, rate: float) -> None:
        """A full bucket."""
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        """Spend a token (after wait() said 0)."""
        self.tokens -= 1.0


class Brake:
    """A destination's circuit: closed (sending), open (waiting for the next probe), probing (one request out)."""

    def __init__(self, settings: DeliverySettings) -> None:
        """Closed."""
        self.settings = settings
        self.state: BrakeState = "closed"
        self.failures = 0  # destination failures in a row
        self.rounds = 0  # probes that failed in a row: the next interval grows with them
        self.reopens_at = 0.0  # time.monotonic() of the next probe, while open
        self.throttled = False  # opened by Pendo's request to slow down (429, 503 with Retry-After)

    def wait(self, now: float) -> float:
        """Seconds before a request may start (while braked, the next probe)."""
        if self.state == "closed":
            return 0.0
        return max(self.reopens_at - now, 0.0)

    def starting(self, now: float) -> bool:
        """A request starts; True when it is a probe."""
        if self.state == "closed":
            return False
        self.state = "probing"
        # A probe that hangs is not waited for beyond the longest interval: Pendo may be back meanwhile, and
        # the next probe finds out (a hanging Pendo still gets one request per interval at most).
        self.reopens_at = now + self.settings.max_probe_seconds
        return True

    def skipped_probe(self, now: float) -> None:
        """A probe's job made no request after all (nothing to send): the next one may go at once."""
        if self.state == "probing":
            self.state, self.reopens_at = "open", now

    def succeeded(self) -> bool:
        """An answer that is not a failure; True when it closes an open brake."""
        reopened = self.state != "closed"
        self.state, self.failures, self.rounds, self.throttled = "closed", 0, 0, False
        return reopened

    def failed(self, now: float, *, probe: bool, throttled: bool, retry_after: float | None) -> float | None:
        """A destination failure; the seconds until the next probe when it opens (or reopens) the brake."""
        self.failures += 1
        if retry_after is not None and retry_after > 0 and self.state != "closed":
            # Pendo says how long: honoured even when the brake is already open.
            self.reopens_at = max(self.reopens_at, now + retry_after)
        if not (probe or throttled or (self.state == "closed" and self.failures >= self.settings.brake_after)):
            return None
        if retry_after is not None and retry_after > 0:
            wait = retry_after
        else:
            interval = self.settings.first_probe_seconds * 2.0 ** min(self.rounds, MAX_EXPONENT)
            wait = min(interval, self.settings.max_probe_seconds) * random.uniform(0.8, 1.1)
        self.rounds += 1
        self.throttled = self.throttled or throttled
        # A probe's answer sets the next probe (the schedule kept for a hanging probe no longer applies).
        self.reopens_at = now + wait if probe or self.state == "closed" else max(self.reopens_at, now + wait)
        self.state = "open"
        return wait


class DestinationState:
    """Everything the relay knows about one destination now; every deliverer's requests to it go through here."""

    def __init__(self, destination: Destination, settings: DeliverySettings, health: Health) -> None:
        """Closed brake, full window, full bucket."""
        self.destination = destination
        self.settings = settings
        self.health = health
        self.brake = Brake(settings)
        self.bucket = TokenBucket(settings.max_rate)
        self.window = float(destination.max_concurrency)  # requests allowed in flight (AIMD)
        self.in_flight = 0
        self.requests = 0  # sent, answered or not
        self.failed_requests = 0
        self.last_failure = ""
        self.changed = asyncio.Event()

    @property
    def name(self) -> str:
        """The destination's name."""
        return self.destination.name

    @property
    def part(self) -> str:
        """Its name in /healthz's problems."""
        return f"destination {self.destination.name}"

    def room(self) -> int:
        """How many more requests could start now, the rate limit aside."""
        if self.brake.wait(time.monotonic()) > 0:
            return 0
        return max(int(self.window) - self.in_flight, 0) if self.brake.state == "closed" else 1

    def start_wait(self, now: float) -> float:
        """Seconds before the next request may start (0: now; inf: once a request in flight has its answer)."""
        brake = self.brake.wait(now)
        if brake > 0:
            return brake
        if self.brake.state == "closed" and self.in_flight >= int(self.window):
            return math.inf
        return self.bucket.wait(now)

    def started(self, now: float) -> bool:
        """A job's first request is about to go (start_wait said 0); True when it is one of the brake's probes."""
        self.in_flight += 1
        self.bucket.take()
        return self.brake.starting(now)

    def finished(self) -> None:
        """A job is done."""
        self.in_flight -= 1
        self.changed.set()

    async def token(self) -> None:
        """Wait for the rate limit (a job's further requests: halves of a refused body, say)."""
        while (wait := self.bucket.wait(time.monotonic())) > 0:
            await asyncio.sleep(wait)
        self.bucket.take()

    def record(self, reply: Reply, *, probe: bool, explain: str) -> None:
        """Feed an answer to the brake and the window, and say in /healthz what is wrong (or that nothing is)."""
        now = time.monotonic()
        self.requests += 1
        if not reply.failed:
            throttled = self.brake.throttled
            if self.brake.succeeded():
                log.warning("%s answers again: delivery to it resumes", self.destination.url)
                if not throttled:
                    # Pendo failed rather than asked to slow down: the backlog drains at full speed at once.
                    self.window = float(self.destination.max_concurrency)
            self.window = min(float(self.destination.max_concurrency), self.window + 1.0 / self.window)
            self.health.report(self.part, None)
            return
        self.failed_requests += 1
        self.last_failure = explain
        retry_after = retry_after_seconds(reply.retry_after, self.settings) if reply.failed else None
        was_closed = self.brake.state == "closed"
        opened = self.brake.failed(now, probe=probe, throttled=reply.throttled, retry_after=retry_after)
        if opened is not None and (was_closed or reply.throttled):
            self.window = max(1.0, self.window / 2)
        if was_closed and opened is not None:
            log.warning("%s: %s; brake open, probing it every few seconds", self.destination.url, explain)
        if reply.throttled:
            wait = max(self.brake.reopens_at - now, 0.0)
            self.health.report(
                self.part,
                f"paused: HTTP {reply.status} from {self.destination.url}; all delivery to it waits {wait:.1f}s, "
                f"then at most {int(self.window)} requests at once",
            )
        elif self.brake.state == "closed":
            self.health.report(self.part, f"{explain}; retrying")
        else:
            self.health.report(self.part, f"{explain}; brake open: one probe at a time, growing intervals")

    def retry_delay(self, reply: Reply, attempts: int) -> float:
        """How long a failed job's entries wait in the outbox: Retry-After, else backoff by attempts.

        Never less than the brake's wait: they could not go before the next probe anyway.
        """
        said = retry_after_seconds(reply.retry_after, self.settings)
        delay = said if said is not None and said > 0 else backoff_seconds(attempts, self.settings)
        if self.brake.state == "open":
            delay = max(delay, self.brake.reopens_at - time.monotonic())
        return min(max(delay, 0.0), self.settings.max_retry_seconds)

    def paused_seconds(self) -> float:
        """Seconds until the next request may start because of the brake (0: not braked)."""
        if self.brake.state == "closed":
            return 0.0
        return round(max(self.brake.reopens_at - time.monotonic(), 0.0), 3)

    def describe(self) -> dict[str, Any]:
        """The destination's brake, rate limit and window for /healthz and /metrics."""
        state = self.brake.state
        return {
            "brake": state,
            "throttled": self.brake.throttled,
            "consecutive_failures": self.brake.failures,
            "next_probe_seconds": self.paused_seconds() if state == "open" else None,
            "max_rate": self.bucket.rate,
            "window": round(self.window, 3),
            "in_flight": self.in_flight,
            "paused": state != "closed",
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "last_failure": self.last_failure or None,
        }


class Channel:
    """How a job's requests reach its destination: rate-limited, timed out, and counted by the brake."""

    def __init__(
        self, session: aiohttp.ClientSession, state: DestinationState, deliverer: Deliverer[Any], *, probe: bool
    ) -> None:
        """For one job."""
        self.session = session
        self.state = state
        self.deliverer = deliverer
        self.probe = probe
        self.sent = 0

    @property
    def destination(self) -> Destination:
        """Where the job goes."""
        return self.state.destination

    async def post(
        self,
        data: bytes,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        max_answer_bytes: int = 500,
    ) -> Reply:
        """Send one request (to the destination's URL and headers unless given); Pendo's answer, or status 0."""
        if self.sent:
            await self.state.token()
        self.sent += 1
        destination = self.state.destination
        try:
            async with self.session.request(
                method, url or destination.url, data=data, headers=dict(headers or destination.headers)
            ) as response:
                text = (await response.content.read(max_answer_bytes)).decode("utf-8", "replace")
                reply = Reply(response.status, text, response.headers.get("retry-after"))
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = f"{type(error).__name__}: {error}"[:300] if str(error) else type(error).__name__
            if isinstance(error, TimeoutError):
                reason = f"no answer within {self.state.settings.timeout_seconds:g}s"
            reply = Reply(0, error=reason)
        explain = self.deliverer.explain(reply, destination) if reply.failed else ""
        self.state.record(reply, probe=self.probe, explain=explain)
        self.probe = False
        return reply

    def retry_delay(self, reply: Reply, attempts: int = 0) -> float:
        """How long entries whose request failed wait before they are due again."""
        return self.state.retry_delay(reply, attempts)


class Deliverer(ABC, Generic[JobT]):
    """One kind of data to Pendo: claims entries, plans requests, reads answers (see the module's docstring)."""

    #: The background task's name, in /healthz when it fails.
    task_name = "deliverer"

    def __init__(self, committer: Committer, destinations: list[Destination], health: Health) -> None:
        """Deliver from committer's outbox to destinations."""
        self.committer = committer
        self.destinations = destinations
        self.health = health

    @abstractmethod
    async def fill(self, destination: Destination, room: int) -> None:
        """Claim due entries into memory (StorageError when the outbox cannot be read)."""

    @abstractmethod
    def take(self, destination: Destination, now: float) -> JobT | None:
        """The next request's job for destination, or None when nothing is ready."""

    def next_due(self, destination: Destination, now: float) -> float | None:
        """Seconds until something held back becomes ready (None: nothing is held back)."""
        return None

    @abstractmethod
    async def send(self, job: JobT, channel: Channel) -> None:
        """Make the job's requests through channel and settle every entry it carries, whatever happens."""

    @abstractmethod
    def release(self, destination: Destination) -> None:
        """Delivery stops: settle whatever is in memory as Released (due again at once)."""

    def explain(self, reply: Reply, destination: Destination) -> str:
        """A failed answer in a sentence, for /healthz."""
        if reply.status == 0:
            return f"{destination.url} fails: {reply.error}"
        return f"HTTP {reply.status} from {destination.url}"


class Engine:
    """Every destination's state, and the loops that deliver to them."""

    def __init__(self, committer: Committer, settings: DeliverySettings, health: Health) -> None:
        """No destinations yet: `add` a deliverer's."""
        self.committer = committer
        self.settings = settings
        self.health = health
        self.states: dict[str, DestinationState] = {}
        self.deliverers: list[Deliverer[Any]] = []
        committer.on_settled(self.wake)

    def add(self, deliverer: Deliverer[Any]) -> None:
        """Deliver deliverer's destinations (names are unique across deliverers)."""
        for destination in deliverer.destinations:
            if destination.name in self.states:
                raise ValueError(f"two deliverers claim destination {destination.name!r}")
            self.states[destination.name] = DestinationState(destination, self.settings, self.health)
        self.deliverers.append(deliverer)

    def wake(self, names: set[str] | None = None) -> None:
        """New entries may be due (for the destinations named, else for all)."""
        for name, state in self.states.items():
            if names is None or name in names:
                state.changed.set()

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every destination's state, by name."""
        return {name: state.describe() for name, state in self.states.items()}

    def paused(self) -> dict[str, float]:
        """Seconds until each braked destination's next probe."""
        return {name: state.paused_seconds() for name, state in self.states.items() if state.brake.state != "closed"}

    def windows(self) -> dict[str, float]:
        """Each destination's window of requests in flight."""
        return {name: state.window for name, state in self.states.items()}

    async def run(self, deliverer: Deliverer[Any], stop: asyncio.Event) -> None:
        """Until stop is set: one loop per destination of deliverer."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        limit = sum(destination.max_concurrency for destination in deliverer.destinations)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=limit)) as session:
            await asyncio.gather(
                *(
                    self._drain(session, deliverer, self.states[destination.name], stop)
                    for destination in deliverer.destinations
                )
            )

    async def _drain(
        self, session: aiohttp.ClientSession, deliverer: Deliverer[Any], state: DestinationState, stop: asyncio.Event
    ) -> None:
        sending: set[asyncio.Task[None]] = set()
        destination = state.destination
        committer = self.committer
        try:
            while not stop.is_set():
                # Cleared before looking, so a send that finishes meanwhile still wakes the wait below.
                state.changed.clear()
                if committer.failure is not None and committer.unsettled:
                    # Outcomes cannot be recorded: sending more would only widen what a crash sends twice.
                    await self._wait(state, stop, self.settings.poll_seconds)
                    continue
                try:
                    await deliverer.fill(destination, state.room())
                except StorageError:
                    # The committer shows it in /healthz; delivery waits for the storage.
                    await self._wait(state, stop, self.settings.poll_seconds)
                    continue
                self.health.report(deliverer.task_name, None)
                now = time.monotonic()
                wait = self.settings.poll_seconds
                while committer.unsettled < self.settings.max_unrecorded:
                    start_wait = state.start_wait(now)
                    if start_wait > 0:
                        wait = min(wait, start_wait)
                        break
                    job = deliverer.take(destination, now)
                    if job is None:
                        break
                    probe = state.started(now)
                    task = asyncio.create_task(self._send(session, deliverer, state, job, probe=probe))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                due = deliverer.next_due(destination, time.monotonic())
                await self._wait(state, stop, wait if due is None else min(wait, due))
        finally:
            await finish_sends(sending, stop, self.settings.timeout_seconds)
            deliverer.release(destination)

    @staticmethod
    async def _send(
        session: aiohttp.ClientSession, deliverer: Deliverer[Any], state: DestinationState, job: Any, *, probe: bool
    ) -> None:
        channel = Channel(session, state, deliverer, probe=probe)
        try:
            await deliverer.send(job, channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivering to %s failed unexpectedly", state.name)
        finally:
            if probe and not channel.sent:
                state.brake.skipped_probe(time.monotonic())
            state.finished()

    @staticmethod
    async def _wait(state: DestinationState, stop: asyncio.Event, seconds: float) -> None:
        changed = asyncio.create_task(state.changed.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({changed, stopping}, timeout=max(seconds, 0.001), return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        stopping.cancel()


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
