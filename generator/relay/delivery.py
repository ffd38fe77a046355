"""Track events to Pendo's Track Events API: one claimed event, one request, one outcome.

The engine (`generator.relay.engine`) decides when a request may go; this deliverer claims events, posts each
one's stored body and turns Pendo's answer into the event's outcome. Nothing one event does (an unencodable body,
an exception) can stop the others: the event gets an outcome and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from generator.relay.committer import Committer
from generator.relay.convert import PENDO_MAX_AGE_MS, TOO_OLD
from generator.relay.engine import (
    Channel,
    Deliverer,
    DeliverySettings,
    Destination,
    Reply,
)
from generator.relay.health import Health
from generator.relay.outbox import DeadLetter, Delivered, Outcome, Pending, Released, RetryLater

log = logging.getLogger("generator.relay")
TRACK = "track"
# Answers that say the relay is misconfigured (secret, region URL), not that the event is bad: the event waits
# and is retried, and /healthz names the problem, rather than every event being dead-lettered until someone
# fixes the setting.
SETUP_PROBLEMS = {
    401: "Pendo refused the Track Event Shared Secret: check PENDO_TRACK_EVENT_SECRET",
    403: "Pendo refused the Track Event Shared Secret: check PENDO_TRACK_EVENT_SECRET",
    404: "Pendo has no Track Events API at this URL: check the config's region or --pendo-url",
}


def track_destination(url: str, secret: str, concurrency: int = 4) -> Destination:
    """Pendo's Track Events API."""
    headers = {"x-pendo-integration-key": secret, "content-type": "application/json"}
    return Destination(TRACK, url, headers, concurrency)


class TrackDeliverer(Deliverer[Pending]):
    """Claims track events and sends each one's body; the engine runs it."""

    task_name = "deliverer"

    def __init__(
        self, committer: Committer, destinations: list[Destination], settings: DeliverySettings, health: Health
    ) -> None:
        """Deliver from committer's outbox to destinations."""
        super().__init__(committer, destinations, health)
        self.settings = settings
        self.waiting: dict[str, deque[Pending]] = {destination.name: deque() for destination in destinations}

    async def fill(self, destination: Destination, room: int) -> None:
        """Claim a batch when fewer wait than could start now."""
        waiting = self.waiting[destination.name]
        if room and len(waiting) < room:
            want = max(self.settings.claim_batch, room) - len(waiting)
            waiting.extend(await self.committer.claim(destination.name, want, self.settings.lease_seconds))

    def take(self, destination: Destination, now: float) -> Pending | None:
        """The next claimed event."""
        waiting = self.waiting[destination.name]
        return waiting.popleft() if waiting else None

    def release(self, destination: Destination) -> None:
        """Claimed events not sent are due again at once."""
        waiting = self.waiting[destination.name]
        while waiting:
            self.committer.settle(Released(waiting.popleft().message_id))

    def explain(self, reply: Reply, destination: Destination) -> str:
        """What a failed answer means for track events."""
        if reply.status == 0:
            return f"{destination.url} fails: {reply.error}"
        return f"HTTP {reply.status} from {destination.url}: {SETUP_PROBLEMS.get(reply.status, 'retrying')}"

    async def send(self, job: Pending, channel: Channel) -> None:
        """Post the event; settle it whatever happens."""
        outcome: Outcome = Released(job.message_id)
        try:
            outcome = await self._attempt(job, channel)
        except asyncio.CancelledError:
            # Stopped mid-request: it may have arrived, and is sent again (the at-least-once window).
            outcome = Released(job.message_id)
            raise
        except Exception as error:
            log.exception("delivering %s failed unexpectedly", job.message_id)
            delay = channel.retry_delay(Reply(0), job.attempts)
            outcome = RetryLater(job.message_id, delay, f"unexpected {type(error).__name__}: {error}"[:500])
        finally:
            self.committer.settle(outcome)

    @staticmethod
    async def _attempt(item: Pending, channel: Channel) -> Outcome:
        if item.event_time_ms < time.time() * 1000 - PENDO_MAX_AGE_MS:
            return DeadLetter(item.message_id, 0, f"not delivered within 7 days: {TOO_OLD}")
        try:
            data = item.body.encode("utf-8")
        except UnicodeEncodeError as error:
            return DeadLetter(item.message_id, 0, f"the stored body cannot be sent as UTF-8: {error}"[:500])
        reply = await channel.post(data)
        if reply.status == 0:
            return RetryLater(item.message_id, channel.retry_delay(reply, item.attempts), reply.error)
        if reply.status < 300:
            return Delivered(item.message_id)
        if reply.failed:
            return RetryLater(item.message_id, channel.retry_delay(reply, item.attempts), f"HTTP {reply.status}")
        return DeadLetter(item.message_id, reply.status, reply.text)
