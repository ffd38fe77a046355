"""Deliver audience memberships to Pendo Segments: per audience, find (or create) its segment, claim, PATCH, settle.

One Pendo app host and Integration Key is one destination: its brake (a 429 or 503 with Retry-After pauses it,
and halves how many requests it gets at once; failures in a row pause it longer) holds every audience. A segment
gets one request at a time (Pendo answers 409 while it writes one), and a visitor is in one request at a time
(the outbox leases the row), so no older membership can land after a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

from generator.audiences_config import AudienceSettings
from generator.errors import StorageError
from generator.relay.audience_store import ClaimedMembership, MembershipOutcome, MembershipVerdict
from generator.relay.audiences import (
    BUSY,
    Change,
    Patch,
    create_body,
    created_segment_id,
    plan_patches,
    read_patch_answer,
    retried_status,
)
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
from generator.relay.metadata import INTEGRATION_KEY_HEADER

log = logging.getLogger("generator.relay")
DESTINATION = "audiences"
PART = f"destination {DESTINATION}"
# Pendo's answer to a PATCH lists one item per operation; enough of it to read them.
MAX_ANSWER_BYTES = 64 * 1024
SETUP_PROBLEMS = {
    401: "Pendo refused the Integration Key: check the variable [metadata] secret_env names (PENDO_INTEGRATION_KEY)",
    403: "Pendo refused the Integration Key: it needs write access",
}


@dataclass(frozen=True)
class AudienceDelivery:
    """Where and how the relay writes audience memberships."""

    settings: AudienceSettings
    base_url: str
    integration_key: str
    concurrency: int = 4

    def segment_url(self, segment_id: str) -> str:
        """The PATCH URL of a segment's visitors."""
        return f"{self.base_url}/api/v1/segment/{segment_id}/visitor"

    @property
    def create_url(self) -> str:
        """Where segments are created."""
        return f"{self.base_url}/api/v1/segment/upload"


class AudienceDeliverer:
    """Sends due memberships to each audience's Pendo segment; run() is its background task."""

    def __init__(
        self, committer: Committer, delivery: AudienceDelivery, settings: DeliverySettings, health: Health
    ) -> None:
        """Deliver from committer's outbox to the segments described by delivery."""
        self.committer = committer
        self.store = committer.outbox
        self.delivery = delivery
        self.settings = settings
        self.health = health
        headers = {INTEGRATION_KEY_HEADER: delivery.integration_key, "content-type": "application/json"}
        self.state = DestinationState(Destination(DESTINATION, delivery.base_url, headers, delivery.concurrency))
        self.states = [self.state]
        self.segments: dict[str, str] = dict(delivery.settings.segments)
        self.busy: set[str] = set()  # audiences with a request under way
        self.not_before: dict[str, float] = {}  # audiences held back (a creation failed, Pendo was busy)
        self.failures = 0  # failed requests in a row
        self.sent: Counter[str] = Counter()  # requests by audience (this relay)
        # Visitors of an operation Pendo refused: each goes alone next time, so only the culprit is dead-lettered.
        self.suspects: set[tuple[str, str]] = set()

    def wake(self) -> None:
        """New memberships may be due."""
        self.state.changed.set()

    def paused(self) -> dict[str, float]:
        """Seconds left of the destination's pause."""
        return seconds_paused(self.states)

    def segment_of(self, audience: str) -> str | None:
        """The segment id this relay knows for an audience (named in the config, or created)."""
        return self.segments.get(audience)

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set: send what is due, a request per audience at a time."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        connector = aiohttp.TCPConnector(limit=self.delivery.concurrency)
        sending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            try:
                while not stop.is_set():
                    self.state.changed.clear()
                    await self._round(session, sending)
                    await self._wait(stop, self.settings.poll_seconds)
            finally:
                await finish_sends(sending, stop, self.settings.timeout_seconds)

    async def _round(self, session: aiohttp.ClientSession, sending: set[asyncio.Task[None]]) -> None:
        if self.state.paused_until > time.monotonic() or self.state.capacity == 0:
            return
        try:
            due = await self.committer.read(self.store.due_audiences)
        except StorageError:
            return  # the committer shows storage trouble in /healthz; delivery waits for it
        self.health.report("audiences deliverer", None)
        now = time.monotonic()
        for audience in due:
            if self.state.capacity == 0 or self.state.paused_until > now:
                break
            if audience in self.busy or self.not_before.get(audience, 0.0) > now:
                continue
            if not self.delivery.settings.sends(audience):
                continue  # taken before the config changed: it waits until the config sends it again
            segment = await self._segment(session, audience)
            if segment is None:
                continue
            try:
                limit = self.delivery.settings.max_visitors
                claimed = await self.committer.write(
                    lambda a=audience, n=limit: self.store.claim_memberships(a, n, self.settings.lease_seconds)  # type: ignore[misc]
                )
            except StorageError:
                return
            if not claimed:
                continue
            self.busy.add(audience)
            self.state.in_flight += 1
            task = asyncio.create_task(self._send(session, audience, segment, claimed))
            sending.add(task)
            task.add_done_callback(sending.discard)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        changed = asyncio.create_task(self.state.changed.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({changed, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        stopping.cancel()

    # Segments -------------------------------------------------------------------------------------------------

    async def _segment(self, session: aiohttp.ClientSession, audience: str) -> str | None:
        """The audience's segment id: named, created before (by any relay), or created now by this relay."""
        known = self.segments.get(audience)
        if known is not None:
            return known
        try:
            stored = await self.committer.read(lambda: self.store.stored_segment(audience))
            if stored is None:
                lease = self.settings.timeout_seconds * 3
                if not await self.committer.write(lambda: self.store.begin_creation(audience, lease)):
                    return None  # another relay (or an earlier attempt) is creating it: wait for its id
                stored = await self._create(session, audience)
        except StorageError:
            return None
        if stored is not None:
            self.segments[audience] = stored
        return stored

    async def _create(self, session: aiohttp.ClientSession, audience: str) -> str | None:
        name = self.delivery.settings.segment_name(audience)
        status, text, retry_after = await self._request(session, "POST", self.delivery.create_url, create_body(name))
        segment = created_segment_id(text) if 200 <= status < 300 else None
        if segment is None:
            reason = f"creating the Pendo segment {name!r} failed: {_said(status, text)}"
            self._failed(status, retry_after, reason)
            self.not_before[audience] = time.monotonic() + backoff_seconds(self.failures, self.settings)
            await self.committer.write(lambda: self.store.creation_failed(audience, reason))
            return None
        self._succeeded()
        log.info("created Pendo segment %s for audience %s", segment, audience)
        # If another relay's creation was recorded first (this one's lease ran out), its id is the one used.
        return await self.committer.write(lambda: self.store.record_segment(audience, segment))

    # Sending --------------------------------------------------------------------------------------------------

    async def _send(
        self, session: aiohttp.ClientSession, audience: str, segment: str, claimed: list[ClaimedMembership]
    ) -> None:
        outcomes: list[MembershipOutcome] = []
        try:
            outcomes = await self._patch(session, audience, segment, claimed)
        except asyncio.CancelledError:
            # Stopped mid-request: it may have arrived, and is sent again (the at-least-once window).
            outcomes = [MembershipOutcome(item, "released") for item in claimed]
            raise
        except Exception as error:
            log.exception("delivering audience %s failed unexpectedly", audience)
            reason = f"unexpected {type(error).__name__}: {error}"[:500]
            outcomes = [
                MembershipOutcome(item, "retry", backoff_seconds(item.attempts, self.settings), reason=reason)
                for item in claimed
            ]
        finally:
            self.state.in_flight -= 1
            self.busy.discard(audience)
            await self._settle(outcomes or [MembershipOutcome(item, "released") for item in claimed])
            self.state.changed.set()

    async def _settle(self, outcomes: list[MembershipOutcome]) -> None:
        try:
            await asyncio.shield(self.committer.write(lambda: self.store.settle_memberships(outcomes)))
        except StorageError as error:
            # Their leases run out and they are sent again: membership writes are idempotent.
            self.health.report("audiences deliverer", f"outcomes not written ({error}); they will be sent again")

    async def _patch(
        self, session: aiohttp.ClientSession, audience: str, segment: str, claimed: list[ClaimedMembership]
    ) -> list[MembershipOutcome]:
        by_visitor = {item.visitor: item for item in claimed}
        alone = [item for item in claimed if (audience, item.visitor) in self.suspects]
        together = [item for item in claimed if (audience, item.visitor) not in self.suspects]
        groups = [together, *([item] for item in alone)]
        outcomes: list[MembershipOutcome] = []
        for group in groups:
            for patch in plan_patches((Change(i.visitor, i.member, i.version) for i in group), len(claimed)):
                outcomes += await self._one_patch(session, audience, segment, patch, by_visitor)
        for outcome in outcomes:
            if outcome.verdict in ("done", "dead"):
                self.suspects.discard((audience, outcome.claimed.visitor))
        return outcomes

    async def _one_patch(
        self,
        session: aiohttp.ClientSession,
        audience: str,
        segment: str,
        patch: Patch,
        by_visitor: dict[str, ClaimedMembership],
    ) -> list[MembershipOutcome]:
        url = self.delivery.segment_url(segment)
        status, text, retry_after = await self._request(session, "PATCH", url, patch.content())
        self.sent[audience] += 1
        if status == 0 or status >= 300:
            return self._refused(audience, segment, patch, by_visitor, (status, text, retry_after))
        self._succeeded()
        answer = read_patch_answer(status, text, patch)
        outcomes = []
        for result in answer.results:
            changes = result.operation.changes
            for change in changes:
                item = by_visitor[change.visitor]
                verdict: MembershipVerdict = result.verdict
                delay = 0.0
                if verdict == "dead" and len(changes) > 1:
                    # Refused as a group: which visitor Pendo objects to is found by sending each alone.
                    self.suspects.add((audience, change.visitor))
                    verdict = "retry"
                elif verdict == "retry":
                    delay = backoff_seconds(item.attempts, self.settings)
                outcomes.append(MembershipOutcome(item, verdict, delay, result.status, result.reason))
        return outcomes

    def _refused(
        self,
        audience: str,
        segment: str,
        patch: Patch,
        by_visitor: dict[str, ClaimedMembership],
        answer: tuple[int, str, str | None],
    ) -> list[MembershipOutcome]:
        """Outcomes when the whole request failed (no answer, or an error status)."""
        status, text, retry_after = answer
        reason = _said(status, text)
        wait = self._failed(status, retry_after, f"segment {segment} (audience {audience}): {reason}")
        if status == BUSY:
            self.not_before[audience] = time.monotonic() + 1.0
        # A segment id Pendo does not have, or a refused key, is the setting's problem, not the visitors'.
        retried = status == 0 or retried_status(status) or status in SETUP_PROBLEMS or status == 404
        verdict: MembershipVerdict = "retry" if retried else "dead"
        outcomes = []
        for change in patch.changes:
            item = by_visitor[change.visitor]
            delay = max(wait, backoff_seconds(item.attempts, self.settings)) if retried else 0.0
            outcomes.append(MembershipOutcome(item, verdict, delay, status, reason))
        return outcomes

    async def _request(
        self, session: aiohttp.ClientSession, method: str, url: str, data: bytes
    ) -> tuple[int, str, str | None]:
        """(status, the answer's start, Retry-After); status 0 when there was no answer (the reason as text)."""
        try:
            async with session.request(method, url, data=data, headers=self.state.destination.headers) as response:
                text = (await response.content.read(MAX_ANSWER_BYTES)).decode("utf-8", "replace")
                return response.status, text, response.headers.get("retry-after")
        except (aiohttp.ClientError, TimeoutError) as error:
            if isinstance(error, TimeoutError):
                return 0, f"no answer within {self.settings.timeout_seconds:g}s", None
            return 0, f"{type(error).__name__}: {error}"[:300], None

    # The destination's brake ----------------------------------------------------------------------------------

    def _succeeded(self) -> None:
        self.failures = 0
        self.state.succeeded()
        if self.health.problem(PART):
            self.health.report(PART, None)

    def _failed(self, status: int, retry_after: str | None, reason: str) -> float:
        """Brake for a failed request; how long its memberships wait."""
        if status == 429 or (status == 503 and retry_after is not None):
            wait = retry_after_seconds(retry_after, self.settings)
            if wait is None:
                wait = backoff_seconds(self.state.throttles, self.settings)
            self.state.throttle(wait)
            self.health.report(PART, f"paused: {reason}; all audiences wait {wait:.1f}s")
            return wait
        if status == BUSY or (400 <= status < 500 and status not in SETUP_PROBLEMS and status != 404):
            return 0.0
        self.failures += 1
        wait = backoff_seconds(self.failures - 1, self.settings)
        self.state.paused_until = max(self.state.paused_until, time.monotonic() + wait)
        problem = SETUP_PROBLEMS.get(status, "retrying")
        if status == 404:
            problem = "Pendo has no such segment: check [audiences.segments] and the region"
        self.health.report(PART, f"{reason}: {problem}")
        return wait


def _said(status: int, text: str) -> str:
    said = " ".join(text.split())[:300]
    return f"HTTP {status}: {said}".rstrip(": ") if status else said
