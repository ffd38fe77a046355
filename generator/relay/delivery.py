"""Deliver the outbox to Pendo: bounded concurrency, backoff on 429/5xx/timeouts, dead letters on other 4xx."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import httpx

from generator.relay.convert import PENDO_MAX_AGE_MS, TOO_OLD, too_old_for_pendo
from generator.relay.outbox import Outbox, Pending

DAY_MS = 24 * 3600 * 1000
# Answers that say the relay is misconfigured (secret, region URL) or Pendo is unwell, not that the event
# is bad: the event waits and is retried, and /healthz names the problem, rather than every event being
# dead-lettered until someone fixes the setting.
SETUP_PROBLEMS = {
    401: "Pendo refused the Track Event Shared Secret: check PENDO_TRACK_EVENT_SECRET",
    403: "Pendo refused the Track Event Shared Secret: check PENDO_TRACK_EVENT_SECRET",
    404: "Pendo has no Track Events API at this URL: check the config's region or --pendo-url",
}
RETRIED_STATUSES = {*SETUP_PROBLEMS, 408, 429}


@dataclass(frozen=True)
class DeliverySettings:
    """Where and how to send."""

    url: str
    secret: str
    concurrency: int = 4
    timeout_seconds: float = 10.0
    first_retry_seconds: float = 0.5
    max_retry_seconds: float = 60.0
    poll_seconds: float = 0.2
    prune_every_seconds: float = 600.0


def backoff_seconds(attempts: int, settings: DeliverySettings, retry_after: str | None = None) -> float:
    """Exponential backoff with jitter, or the server's Retry-After when it gives one (capped either way)."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), settings.max_retry_seconds)
        except ValueError:
            pass
    exponential: float = settings.first_retry_seconds * (2**attempts)
    # Jitter keeps many relays that failed together from retrying together.
    return min(exponential, settings.max_retry_seconds) * random.uniform(0.8, 1.2)


class Deliverer:
    """Sends what is due, never more than `concurrency` requests at once."""

    def __init__(self, outbox: Outbox, settings: DeliverySettings) -> None:
        """Deliver from outbox with settings."""
        self.outbox = outbox
        self.settings = settings
        self.wake = asyncio.Event()
        self.problem: str | None = None
        self._in_flight: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set: take what is due and send it."""
        limits = httpx.Limits(max_connections=self.settings.concurrency)
        async with httpx.AsyncClient(timeout=self.settings.timeout_seconds, limits=limits) as client:
            slots = asyncio.Semaphore(self.settings.concurrency)
            tasks: set[asyncio.Task[None]] = set()
            next_prune = 0.0
            while not stop.is_set():
                if time.monotonic() >= next_prune:
                    # Any replay of a forgotten messageId is now too old to be accepted, so nothing
                    # is delivered twice; a day's margin covers clock differences between senders.
                    self.outbox.prune(time.time() * 1000 - PENDO_MAX_AGE_MS - DAY_MS)
                    next_prune = time.monotonic() + self.settings.prune_every_seconds
                free = self.settings.concurrency - len(self._in_flight)
                for item in self.outbox.due(free, self._in_flight) if free > 0 else []:
                    self._in_flight.add(item.message_id)
                    task = asyncio.create_task(self._send(client, slots, item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=self.settings.poll_seconds)
                except TimeoutError:
                    pass
            for task in tasks:
                task.cancel()

    async def _send(self, client: httpx.AsyncClient, slots: asyncio.Semaphore, item: Pending) -> None:
        try:
            if too_old_for_pendo(item.body, time.time() * 1000):
                self.outbox.dead_letter(item.message_id, 0, f"not delivered within 7 days: {TOO_OLD}")
                return
            async with slots:
                response = await client.post(
                    self.settings.url,
                    json=item.body,
                    headers={"x-pendo-integration-key": self.settings.secret},
                )
            status = response.status_code
            if status < 300:
                self.outbox.delivered(item.message_id)
                self.problem = None
            elif status in RETRIED_STATUSES or status >= 500:
                delay = backoff_seconds(item.attempts, self.settings, response.headers.get("retry-after"))
                self.outbox.retry_later(item.message_id, delay, f"HTTP {status}")
                if status in SETUP_PROBLEMS:
                    self.problem = f"HTTP {status} from {self.settings.url}: {SETUP_PROBLEMS[status]}"
            else:
                self.outbox.dead_letter(item.message_id, status, response.text[:500])
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            self.outbox.retry_later(item.message_id, backoff_seconds(item.attempts, self.settings), reason)
        finally:
            self._in_flight.discard(item.message_id)
            self.wake.set()
