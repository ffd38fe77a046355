"""Deliver identify and group values to Pendo's metadata API: claimed, held for the window, merged, sent in bulk.

Each destination (a record kind and field group) drains its own outbox queue. Claimed entries stay leased in the
outbox while they wait in memory for their record's window to end, so a crash loses nothing: the leases run
out (or the next start releases them) and the entries are claimed again. A record's waiting updates are then
merged (the last value per field wins, in timestamp order), packed into bodies of at most `max_rows` rows and
`max_bytes` bytes, and sent; each entry is settled once every body carrying its values has an answer.

A failed body pauses its whole destination until it is retried, and a record is never in two requests at once,
so a newer value of a record is not written before an older one that is still being retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp

from generator.errors import StorageError
from generator.metadata_config import MetadataSettings
from generator.relay.committer import Committer
from generator.relay.delivery import (
    DeliverySettings,
    Destination,
    DestinationState,
    backoff_seconds,
    finish_sends,
    retry_after_seconds,
    seconds_paused,
)
from generator.relay.health import Health
from generator.relay.metadata import (
    Answer,
    FieldUpdate,
    RequestBody,
    build_request,
    classify,
    coalesce,
    metadata_url,
    request_bodies,
)
from generator.relay.metadata import Destination as MetadataDestination
from generator.relay.metadata_rows import destination_name, stored_update
from generator.relay.outbox import DeadLetter, Delivered, Outcome, Released, RetryLater

log = logging.getLogger("generator.relay")
# Updates held in memory per destination at most; beyond that, entries wait in the outbox until some are sent.
MAX_HELD = 20_000
# A destination stays paused this much longer than its retried entries wait, so they are claimed again (and
# merged with newer updates of their records) before anything newer is sent.
PAUSE_MARGIN_SECONDS = 0.25
# Pendo's answer to a bulk request lists the records it did not find; enough of it to read them.
MAX_ANSWER_BYTES = 256 * 1024


@dataclass(frozen=True)
class MetadataDelivery:
    """Where and how the relay writes identify and group values."""

    settings: MetadataSettings
    base_url: str
    integration_key: str
    concurrency: int = 4

    def destinations(self) -> list[MetadataDestination]:
        """The destinations the config maps fields to."""
        tables = {"visitor": self.settings.visitor, "account": self.settings.account}
        if self.settings.parent_account is not None:
            tables["parentAccount"] = self.settings.parent_account
        return sorted(
            MetadataDestination(kind, group)  # type: ignore[arg-type]
            for kind, table in tables.items()
            for group in table.by_group()
        )


@dataclass
class _Progress:
    """An entry whose values are in bodies under way: how many still await an answer, and the answers so far."""

    update: FieldUpdate
    remaining: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class _Queue:
    """One destination's entries in memory: held for their window, in bodies under way, or waiting to be sent."""

    window_seconds: float
    held: dict[str, list[FieldUpdate]] = field(default_factory=dict)  # by record id, in claim order
    since: dict[str, float] = field(default_factory=dict)  # when each record's window started (monotonic)
    busy: Counter[str] = field(default_factory=Counter)  # records with bodies under way
    progress: dict[str, _Progress] = field(default_factory=dict)  # entries in bodies, by id
    ready: deque[RequestBody] = field(default_factory=deque)
    held_ids: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        """Entries in memory."""
        return len(self.held_ids) + len(self.progress)

    def knows(self, message_id: str) -> bool:
        """Whether the entry is already here (a claim after its lease ran out renews it, nothing more)."""
        return message_id in self.held_ids or message_id in self.progress

    def hold(self, update: FieldUpdate, now: float, *, at_once: bool) -> None:
        """Hold an update until its record's window ends (a retried one does not wait a second window)."""
        self.held.setdefault(update.record_id, []).append(update)
        self.held_ids.add(update.message_id)
        start = now - self.window_seconds if at_once else now
        self.since[update.record_id] = min(self.since.get(update.record_id, start), start)

    def take_due(self, now: float) -> list[FieldUpdate]:
        """The updates of records whose window has ended and that have no body under way."""
        due = [
            record
            for record, since in self.since.items()
            if now - since >= self.window_seconds and not self.busy[record]
        ]
        updates = [update for record in due for update in self.held.pop(record)]
        for record in due:
            del self.since[record]
        self.held_ids.difference_update(update.message_id for update in updates)
        return updates

    def next_due(self, now: float) -> float | None:
        """Seconds until the next record's window ends (None when nothing waits)."""
        waiting = [since + self.window_seconds - now for record, since in self.since.items() if not self.busy[record]]
        return max(min(waiting), 0.0) if waiting else None

    def unsent_ids(self) -> list[str]:
        """Every entry in memory that has no outcome yet."""
        return [*self.held_ids, *self.progress]


def combined(outcomes: Iterable[Outcome]) -> Outcome:
    """One entry's outcome from its bodies' answers: retried if any body is, else refused if any is, else done."""
    found = list(outcomes)
    for kind in (Released, RetryLater, DeadLetter):
        chosen = [outcome for outcome in found if isinstance(outcome, kind)]
        if chosen:
            return max(chosen, key=lambda item: getattr(item, "delay_seconds", 0.0))
    return found[0]


class MetadataDeliverer:
    """Sends held, merged identify and group values to each metadata destination; run() is its background task."""

    def __init__(
        self, committer: Committer, delivery: MetadataDelivery, settings: DeliverySettings, health: Health
    ) -> None:
        """Deliver from committer's outbox to the metadata API described by delivery."""
        self.committer = committer
        self.delivery = delivery
        self.settings = settings
        self.health = health
        create = delivery.settings.create
        self.targets = {destination_name(target): target for target in delivery.destinations()}
        self.states = [
            DestinationState(
                Destination(
                    name,
                    metadata_url(delivery.base_url, target, create=create),
                    {"content-type": "application/json"},
                    delivery.concurrency,
                )
            )
            for name, target in self.targets.items()
        ]
        self.queues = {state.destination.name: _Queue(delivery.settings.window_seconds) for state in self.states}
        self.failures: Counter[str] = Counter()  # failed bodies in a row, by destination
        self.bodies_sent = 0
        self.rows_sent = 0
        committer.on_settled(self._outcomes_written)

    def _outcomes_written(self) -> None:
        # Bodies may wait for the outcomes of a previous one to be written (max_unrecorded): they can go now.
        for state in self.states:
            if self.queues[state.destination.name].ready:
                state.changed.set()

    def wake(self) -> None:
        """New entries may be due."""
        for state in self.states:
            state.changed.set()

    def paused(self) -> dict[str, float]:
        """Seconds left of each destination's pause."""
        return seconds_paused(self.states)

    def held(self) -> int:
        """Entries in memory (held for their window or being sent)."""
        return sum(len(queue) for queue in self.queues.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set: one loop per destination."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        connector = aiohttp.TCPConnector(limit=sum(s.destination.max_concurrency for s in self.states))
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._drain(session, state, stop) for state in self.states))

    async def _claim(self, state: DestinationState, queue: _Queue) -> bool:
        """Claim due entries into the queue while there is room; False when storage fails."""
        settings = self.delivery.settings
        lease = self.settings.lease_seconds + settings.window_seconds
        limit = max(self.settings.claim_batch, settings.max_rows)
        while len(queue) < MAX_HELD:
            want = min(limit, MAX_HELD - len(queue))
            try:
                items = await self.committer.claim(state.destination.name, want, lease)
            except StorageError:
                return False  # the committer shows it in /healthz
            self.health.report("metadata deliverer", None)
            now = time.monotonic()
            for item in items:
                if queue.knows(item.message_id):
                    continue
                try:
                    update = stored_update(item)
                except ValueError as error:
                    self.committer.settle(DeadLetter(item.message_id, 0, str(error)[:500]))
                    continue
                queue.hold(update, now, at_once=item.attempts > 0)
            if len(items) < want:
                break
        return True

    async def _drain(self, session: aiohttp.ClientSession, state: DestinationState, stop: asyncio.Event) -> None:
        name = state.destination.name
        queue = self.queues[name]
        sending: set[asyncio.Task[None]] = set()
        part = f"destination {name}"
        try:
            while not stop.is_set():
                state.changed.clear()
                if self.committer.failure is not None and self.committer.unsettled:
                    await self._wait(state, stop, self.settings.poll_seconds)
                    continue
                if not await self._claim(state, queue):
                    await self._wait(state, stop, self.settings.poll_seconds)
                    continue
                now = time.monotonic()
                pause = state.paused_until - now
                if pause > 0:
                    await self._wait(state, stop, min(pause, self.settings.poll_seconds))
                    continue
                if not queue.ready:
                    queue.ready.extend(self._plan(queue, queue.take_due(now)))
                while queue.ready and state.capacity > 0 and self.committer.unsettled < self.settings.max_unrecorded:
                    state.in_flight += 1
                    task = asyncio.create_task(self._send(session, state, queue, queue.ready.popleft()))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                if not len(queue) and state.in_flight == 0 and self.health.problem(part).startswith("paused"):
                    self.health.report(part, None)
                next_due = queue.next_due(time.monotonic())
                wait = self.settings.poll_seconds if next_due is None else min(next_due, self.settings.poll_seconds)
                await self._wait(state, stop, wait)
        finally:
            await finish_sends(sending, stop, self.settings.timeout_seconds)
            # Whatever has no outcome is due again at once (after a restart, or when this loop starts again).
            for message_id in queue.unsent_ids():
                self.committer.settle(Released(message_id))
            self.queues[name] = _Queue(queue.window_seconds)

    def _plan(self, queue: _Queue, updates: list[FieldUpdate]) -> list[RequestBody]:
        if not updates:
            return []
        settings = self.delivery.settings
        bodies = request_bodies(coalesce(updates), max_rows=settings.max_rows, max_bytes=settings.max_bytes)
        by_id = {update.message_id: update for update in updates}
        for body in bodies:
            for message_id in body.message_ids:
                queue.progress.setdefault(message_id, _Progress(by_id[message_id])).remaining += 1
            queue.busy.update(set(body.record_ids))
        return bodies

    @staticmethod
    async def _wait(state: DestinationState, stop: asyncio.Event, seconds: float) -> None:
        changed = asyncio.create_task(state.changed.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({changed, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        stopping.cancel()

    async def _send(
        self, session: aiohttp.ClientSession, state: DestinationState, queue: _Queue, body: RequestBody
    ) -> None:
        updates = {message_id: queue.progress[message_id].update for message_id in body.message_ids}
        outcomes: Mapping[str, Outcome] = {}
        try:
            outcomes = await self._deliver(session, state, body, updates)
        except asyncio.CancelledError:
            # Stopped mid-request: it may have arrived, and is sent again (the at-least-once window).
            outcomes = {message_id: Released(message_id) for message_id in updates}
            raise
        except Exception as error:
            log.exception("delivering metadata to %s failed unexpectedly", state.destination.name)
            delay = self._pause(state, None)
            reason = f"unexpected {type(error).__name__}: {error}"[:500]
            outcomes = {message_id: RetryLater(message_id, delay, reason) for message_id in updates}
        finally:
            state.in_flight -= 1
            for record in set(body.record_ids):
                queue.busy[record] -= 1
                if queue.busy[record] <= 0:
                    del queue.busy[record]
            for message_id in updates:
                progress = queue.progress[message_id]
                progress.outcomes.append(outcomes.get(message_id, Released(message_id)))
                progress.remaining -= 1
                if progress.remaining == 0:
                    del queue.progress[message_id]
                    self.committer.settle(combined(progress.outcomes))
            state.changed.set()

    def _pause(self, state: DestinationState, seconds: float | None) -> float:
        """Pause the destination (for seconds, else by its failures in a row); how long its entries wait."""
        name = state.destination.name
        self.failures[name] += 1
        wait = backoff_seconds(self.failures[name] - 1, self.settings) if seconds is None else seconds
        state.paused_until = max(state.paused_until, time.monotonic() + wait + PAUSE_MARGIN_SECONDS)
        return wait

    async def _deliver(
        self,
        session: aiohttp.ClientSession,
        state: DestinationState,
        body: RequestBody,
        updates: Mapping[str, FieldUpdate],
    ) -> dict[str, Outcome]:
        destination = state.destination
        part = f"destination {destination.name}"
        ids = sorted(body.message_ids)
        request = build_request(
            body,
            base_url=self.delivery.base_url,
            integration_key=self.delivery.integration_key,
            create=self.delivery.settings.create,
        )
        try:
            async with session.post(request.url, data=request.content, headers=dict(request.headers)) as response:
                status = response.status
                text = (await response.content.read(MAX_ANSWER_BYTES)).decode("utf-8", "replace")
                retry_after = response.headers.get("retry-after")
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = f"{type(error).__name__}: {error}"[:300] if str(error) else type(error).__name__
            if isinstance(error, TimeoutError):
                reason = f"no answer within {self.settings.timeout_seconds:g}s"
            delay = self._pause(state, None)
            self.health.report(part, f"{destination.url} fails: {reason}; retrying")
            return {message_id: RetryLater(message_id, delay, reason) for message_id in ids}
        self.bodies_sent += 1
        self.rows_sent += len(body.rows)
        answer = classify(status, text, body, retry_after)
        if answer.verdict in ("retry", "misconfigured"):
            delay = self._held_back(state, status, answer, retry_after)
            return {message_id: RetryLater(message_id, delay, answer.reason) for message_id in ids}
        self.failures[destination.name] = 0
        if answer.verdict in ("delivered", "partly_failed"):
            state.succeeded()
            self.health.report(part, None)
            return self._accepted(body, answer)
        if answer.verdict == "unknown_fields":
            return await self._without_refused(session, state, body, updates, status, answer)
        if answer.verdict == "split":
            first, second = body.halves()
            results = await self._deliver(session, state, first, updates)
            for message_id, outcome in (await self._deliver(session, state, second, updates)).items():
                results[message_id] = combined([outcome, *([results[message_id]] if message_id in results else [])])
            return results
        return {message_id: DeadLetter(message_id, status, answer.reason) for message_id in ids}

    def _held_back(self, state: DestinationState, status: int, answer: Answer, retry_after: str | None) -> float:
        destination = state.destination
        part = f"destination {destination.name}"
        if answer.verdict == "retry" and (status == 429 or (status == 503 and retry_after is not None)):
            wait = retry_after_seconds(retry_after, self.settings)
            if wait is None:
                wait = backoff_seconds(state.throttles, self.settings)
            state.throttle(wait + PAUSE_MARGIN_SECONDS)
            self.health.report(
                part,
                f"paused: HTTP {status} from {destination.url}; all delivery to it waits {wait:.1f}s, "
                f"then at most {int(state.window)} requests at once",
            )
            return wait
        delay = self._pause(state, None)
        problem = answer.reason if answer.verdict == "misconfigured" else f"HTTP {status} from {destination.url}"
        self.health.report(part, f"{problem}; held, retrying in {delay:.1f}s")
        return delay

    @staticmethod
    def _accepted(body: RequestBody, answer: Answer) -> dict[str, Outcome]:
        failed = set(answer.failed_ids)
        if answer.verdict == "partly_failed" and not failed:
            log.warning("Pendo's metadata API: %s", answer.reason)
        results: dict[str, Outcome] = {}
        for row in body.rows:
            for message_id in row.message_ids:
                if row.record_id in failed:
                    results[message_id] = DeadLetter(message_id, 200, answer.reason)
                else:
                    results.setdefault(message_id, Delivered(message_id))
        return results

    async def _without_refused(  # noqa: PLR0917  (one answer's context)
        self,
        session: aiohttp.ClientSession,
        state: DestinationState,
        body: RequestBody,
        updates: Mapping[str, FieldUpdate],
        status: int,
        answer: Answer,
    ) -> dict[str, Outcome]:
        refused = set(answer.unknown_fields)
        rest = body.without_fields(refused)
        results = await self._deliver(session, state, rest, updates) if rest is not None else {}
        for message_id in body.message_ids:
            mine = sorted(refused & set(updates[message_id].values))
            if not mine:
                results.setdefault(message_id, Delivered(message_id))
                continue
            others = "; its other values went on without them" if set(updates[message_id].values) - refused else ""
            refusal = DeadLetter(message_id, status, f"Pendo refused {', '.join(mine)}: {answer.reason}{others}"[:1000])
            results[message_id] = combined([refusal, *([results[message_id]] if message_id in results else [])])
        return results
