"""Deliver identify and group values to Pendo's metadata API: claimed, held for the window, merged, sent in bulk.

Each destination (a record kind and field group) drains its own outbox queue. Claimed entries stay leased in the
outbox while they wait in memory for their record's window to end, so a crash loses nothing: the leases run
out (or the next start releases them) and the entries are claimed again. A record's waiting updates are then
merged (the last value per field wins, in the order the outbox accepted them), packed into bodies of at most
`max_rows` rows and `max_bytes` bytes, and sent; each entry is settled once every body carrying its values has an
answer. When and how fast bodies go is the engine's business (`generator.relay.engine`).

The value Pendo ends with is the latest one accepted, however many relays share the outbox and whatever is killed:
the outbox leases a record's entries together (one relay at a time holds a record), a record is never in two
requests at once, and when a body is to be retried its record's newer updates held here go back to the outbox with
it, so the next claim takes the record whole and merges everything in acceptance order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from generator.metadata_config import MetadataSettings
from generator.relay.committer import Committer
from generator.relay.engine import Channel, Deliverer, DeliverySettings, Destination, Reply
from generator.relay.health import Health
from generator.relay.metadata import (
    SETUP_PROBLEMS,
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

    def drop_records(self, records: set[str]) -> list[str]:
        """Forget the held (not yet planned) updates of records; their ids."""
        dropped: list[str] = []
        for record in records:
            for update in self.held.pop(record, []):
                dropped.append(update.message_id)
                self.held_ids.discard(update.message_id)
            self.since.pop(record, None)
        return dropped

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


class MetadataDeliverer(Deliverer[tuple[str, RequestBody]]):
    """Sends held, merged identify and group values to each metadata destination; the engine runs it."""

    task_name = "metadata deliverer"

    def __init__(
        self, committer: Committer, delivery: MetadataDelivery, settings: DeliverySettings, health: Health
    ) -> None:
        """Deliver from committer's outbox to the metadata API described by delivery."""
        create = delivery.settings.create
        self.targets = {destination_name(target): target for target in delivery.destinations()}
        destinations = [
            Destination(
                name,
                metadata_url(delivery.base_url, target, create=create),
                {"content-type": "application/json"},
                delivery.concurrency,
            )
            for name, target in self.targets.items()
        ]
        super().__init__(committer, destinations, health)
        self.delivery = delivery
        self.settings = settings
        self.queues = {name: _Queue(delivery.settings.window_seconds) for name in self.targets}
        self.bodies_sent = 0
        self.rows_sent = 0

    def held(self) -> int:
        """Entries in memory (held for their window or being sent)."""
        return sum(len(queue) for queue in self.queues.values())

    async def fill(self, destination: Destination, room: int) -> None:
        """Claim due records (every waiting entry of each) into the queue while there is room."""
        queue = self.queues[destination.name]
        settings = self.delivery.settings
        lease = self.settings.lease_seconds + settings.window_seconds
        limit = max(self.settings.claim_batch, settings.max_rows)
        while len(queue) < MAX_HELD:
            want = min(limit, MAX_HELD - len(queue))
            # Whole records: a record's entries are leased together (across relays), so one relay at a time
            # writes a record, and its newest value goes with (after) every older one still waiting.
            items = await self.committer.claim(destination.name, want, lease, by_key=True)
            now = time.monotonic()
            fresh = 0
            for item in sorted(items, key=lambda pending: pending.sequence):
                if queue.knows(item.message_id):
                    continue
                fresh += 1
                try:
                    update = stored_update(item)
                except ValueError as error:
                    self.committer.settle(DeadLetter(item.message_id, 0, str(error)[:500]))
                    continue
                queue.hold(update, now, at_once=item.attempts > 0)
            if not fresh or len(items) < want:
                break

    def take(self, destination: Destination, now: float) -> tuple[str, RequestBody] | None:
        """The next planned body; records whose window has ended are merged and planned first."""
        queue = self.queues[destination.name]
        if not queue.ready:
            queue.ready.extend(self._plan(queue, queue.take_due(now)))
        return (destination.name, queue.ready.popleft()) if queue.ready else None

    def next_due(self, destination: Destination, now: float) -> float | None:
        """Seconds until the next record's window ends."""
        queue = self.queues[destination.name]
        return 0.0 if queue.ready else queue.next_due(now)

    def release(self, destination: Destination) -> None:
        """Whatever has no outcome is due again at once (after a restart, or when the loop starts again)."""
        queue = self.queues[destination.name]
        for message_id in queue.unsent_ids():
            self.committer.settle(Released(message_id))
        self.queues[destination.name] = _Queue(queue.window_seconds)

    def explain(self, reply: Reply, destination: Destination) -> str:
        """What a failed answer means for the metadata API."""
        if reply.status == 0:
            return f"{destination.url} fails: {reply.error}"
        if reply.status in SETUP_PROBLEMS:
            return f"HTTP {reply.status}: {SETUP_PROBLEMS[reply.status]}"
        return f"HTTP {reply.status} from {destination.url}"

    def _plan(self, queue: _Queue, updates: list[FieldUpdate]) -> list[RequestBody]:
        if not updates:
            return []
        settings = self.delivery.settings
        ordered = sorted(updates, key=lambda update: update.sequence)
        rows = coalesce(ordered, in_given_order=True)
        bodies = request_bodies(rows, max_rows=settings.max_rows, max_bytes=settings.max_bytes)
        by_id = {update.message_id: update for update in updates}
        for body in bodies:
            for message_id in body.message_ids:
                queue.progress.setdefault(message_id, _Progress(by_id[message_id])).remaining += 1
            queue.busy.update(set(body.record_ids))
        return bodies

    async def send(self, job: tuple[str, RequestBody], channel: Channel) -> None:
        """Post the body (and its halves or remainders as Pendo's answers ask); settle every entry in it."""
        name, body = job
        queue = self.queues[name]
        updates = {message_id: queue.progress[message_id].update for message_id in body.message_ids}
        outcomes: Mapping[str, Outcome] = {}
        try:
            outcomes = await self._deliver(channel, body, updates)
        except asyncio.CancelledError:
            # Stopped mid-request: it may have arrived, and is sent again (the at-least-once window).
            outcomes = {message_id: Released(message_id) for message_id in updates}
            raise
        except Exception as error:
            log.exception("delivering metadata to %s failed unexpectedly", name)
            delay = channel.retry_delay(Reply(0))
            reason = f"unexpected {type(error).__name__}: {error}"[:500]
            outcomes = {message_id: RetryLater(message_id, delay, reason) for message_id in updates}
        finally:
            self._settle(queue, body, updates, outcomes)

    def _settle(
        self, queue: _Queue, body: RequestBody, updates: Mapping[str, FieldUpdate], outcomes: Mapping[str, Outcome]
    ) -> None:
        retried = False
        for record in set(body.record_ids):
            queue.busy[record] -= 1
            if queue.busy[record] <= 0:
                del queue.busy[record]
        for message_id in updates:
            progress = queue.progress[message_id]
            outcome = outcomes.get(message_id, Released(message_id))
            retried = retried or isinstance(outcome, RetryLater | Released)
            progress.outcomes.append(outcome)
            progress.remaining -= 1
            if progress.remaining == 0:
                del queue.progress[message_id]
                self.committer.settle(combined(progress.outcomes))
        if retried:
            # Newer updates of these records held here must not be written before the older ones going back
            # to the outbox: they go back too (due at once), and the next claim takes each record whole.
            for message_id in queue.drop_records(set(body.record_ids)):
                self.committer.settle(Released(message_id))

    async def _deliver(
        self, channel: Channel, body: RequestBody, updates: Mapping[str, FieldUpdate]
    ) -> dict[str, Outcome]:
        ids = sorted(body.message_ids)
        request = build_request(
            body,
            base_url=self.delivery.base_url,
            integration_key=self.delivery.integration_key,
            create=self.delivery.settings.create,
        )
        reply = await channel.post(
            request.content, url=request.url, headers=request.headers, max_answer_bytes=MAX_ANSWER_BYTES
        )
        if reply.status == 0:
            delay = channel.retry_delay(reply)
            return {message_id: RetryLater(message_id, delay, reply.error) for message_id in ids}
        self.bodies_sent += 1
        self.rows_sent += len(body.rows)
        answer = classify(reply.status, reply.text, body, reply.retry_after)
        if answer.verdict in ("retry", "misconfigured"):
            delay = channel.retry_delay(reply)
            return {message_id: RetryLater(message_id, delay, answer.reason) for message_id in ids}
        if answer.verdict in ("delivered", "partly_failed"):
            return self._accepted(body, answer)
        if answer.verdict == "unknown_fields":
            return await self._without_refused(channel, body, updates, reply.status, answer)
        if answer.verdict == "split":
            first, second = body.halves()
            results = await self._deliver(channel, first, updates)
            for message_id, outcome in (await self._deliver(channel, second, updates)).items():
                results[message_id] = combined([outcome, *([results[message_id]] if message_id in results else [])])
            return results
        return {message_id: DeadLetter(message_id, reply.status, answer.reason) for message_id in ids}

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

    async def _without_refused(
        self, channel: Channel, body: RequestBody, updates: Mapping[str, FieldUpdate], status: int, answer: Answer
    ) -> dict[str, Outcome]:
        refused = set(answer.unknown_fields)
        rest = body.without_fields(refused)
        results = await self._deliver(channel, rest, updates) if rest is not None else {}
        for message_id in body.message_ids:
            mine = sorted(refused & set(updates[message_id].values))
            if not mine:
                results.setdefault(message_id, Delivered(message_id))
                continue
            others = "; its other values went on without them" if set(updates[message_id].values) - refused else ""
            refusal = DeadLetter(message_id, status, f"Pendo refused {', '.join(mine)}: {answer.reason}{others}"[:1000])
            results[message_id] = combined([refusal, *([results[message_id]] if message_id in results else [])])
        return results
