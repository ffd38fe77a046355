"""Audience memberships to Pendo Segments: a deliverer on the delivery engine (`generator.relay.engine`).

Pendo's segment API is one destination: its brake, rate limit and window (the engine's) hold every audience.
This deliverer only finds each audience's segment (named in the config, created before by any relay, or created
now by the one relay that takes the creation), claims due memberships, plans PATCH bodies and reads Pendo's
answers. A segment gets one request at a time (Pendo answers 409 while it writes one), and a visitor is in one
request at a time (the outbox leases its row), so no older membership can land after a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from generator.audiences_config import AudienceSettings
from generator.relay.audience_store import ClaimedMembership, MembershipOutcome, MembershipVerdict
from generator.relay.audiences import (
    BUSY,
    Change,
    Patch,
    create_body,
    created_segment_id,
    plan_patches,
    read_patch_answer,
)
from generator.relay.committer import Committer
from generator.relay.engine import Channel, Deliverer, DeliverySettings, Destination, Reply
from generator.relay.health import Health
from generator.relay.metadata import INTEGRATION_KEY_HEADER

log = logging.getLogger("generator.relay")
DESTINATION = "audiences"
# Pendo's answer to a PATCH lists one item per operation; enough of it to read them.
MAX_ANSWER_BYTES = 64 * 1024
# Pendo writes one segment at a time: after a 409, that audience waits this long.
BUSY_SECONDS = 1.0
SETUP_PROBLEMS = {
    401: "Pendo refused the Integration Key: check PENDO_INTEGRATION_KEY (or the variable [metadata] secret_env names)",
    403: "Pendo refused the Integration Key: it needs write access",
    404: "Pendo has no such segment here: check [audiences.segments], the config's region or --pendo-metadata-url",
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


@dataclass(frozen=True)
class CreateSegment:
    """A job: create the audience's segment (this relay took the creation)."""

    audience: str


@dataclass(frozen=True)
class WriteMemberships:
    """A job: write claimed memberships of an audience to its segment."""

    audience: str
    segment: str
    claimed: tuple[ClaimedMembership, ...]


AudienceJob = CreateSegment | WriteMemberships


class AudienceDeliverer(Deliverer[AudienceJob]):
    """Claims audience memberships, plans PATCHes and reads Pendo's answers; the engine runs it."""

    task_name = "audiences deliverer"

    def __init__(
        self, committer: Committer, delivery: AudienceDelivery, settings: DeliverySettings, health: Health
    ) -> None:
        """Deliver from committer's outbox to the segments described by delivery."""
        headers = {INTEGRATION_KEY_HEADER: delivery.integration_key, "content-type": "application/json"}
        url = f"{delivery.base_url}/api/v1/segment"
        super().__init__(committer, [Destination(DESTINATION, url, headers, delivery.concurrency)], health)
        self.store = committer.outbox
        self.delivery = delivery
        self.settings = settings
        self.segments: dict[str, str] = dict(delivery.settings.segments)
        self.ready: deque[AudienceJob] = deque()
        self.busy: set[str] = set()  # audiences with a job ready or under way
        self.not_before: dict[str, float] = {}  # audiences held back (a creation failed, Pendo was busy)
        # Visitors of an operation Pendo refused: each goes alone next time, so only the culprit is dead-lettered.
        self.suspects: set[tuple[str, str]] = set()
        self.create_failures: dict[str, int] = {}  # failed creations in a row, by audience

    def segment_of(self, audience: str) -> str | None:
        """The segment id this relay knows for an audience (named in the config, or created)."""
        return self.segments.get(audience)

    async def fill(self, destination: Destination, room: int) -> None:
        """A job per due audience (up to room): its segment's creation, or a claim of up to max_visitors."""
        if not room or self.ready:
            return
        due = await self.committer.read(self.store.due_audiences)
        now = time.monotonic()
        lease = self.settings.lease_seconds
        for audience in due:
            if len(self.ready) >= room:
                break
            if audience in self.busy or self.not_before.get(audience, 0.0) > now:
                continue
            if not self.delivery.settings.sends(audience):
                continue  # accepted before the config changed: it waits until the config sends it again
            segment = self.segments.get(audience)
            if segment is None:
                segment = await self.committer.read(partial(self.store.stored_segment, audience))
            if segment is None:
                # Only one relay creates it; the others find its id here once it is written.
                creation = self.settings.timeout_seconds * 3
                if await self.committer.write(partial(self.store.begin_creation, audience, creation)):
                    self._ready(CreateSegment(audience))
                continue
            self.segments[audience] = segment
            limit = self.delivery.settings.max_visitors
            claimed = await self.committer.write(partial(self.store.claim_memberships, audience, limit, lease))
            if claimed:
                self._ready(WriteMemberships(audience, segment, tuple(claimed)))

    def _ready(self, job: AudienceJob) -> None:
        self.busy.add(job.audience)
        self.ready.append(job)

    def take(self, destination: Destination, now: float) -> AudienceJob | None:
        """The next job."""
        return self.ready.popleft() if self.ready else None

    def release(self, destination: Destination) -> None:
        """Claimed memberships not sent are due again at once (an untried creation's short lease runs out)."""
        while self.ready:
            job = self.ready.popleft()
            self.busy.discard(job.audience)
            if isinstance(job, WriteMemberships):
                for item in job.claimed:
                    self.committer.settle(MembershipOutcome(item, "released"))

    def explain(self, reply: Reply, destination: Destination) -> str:
        """What a failed answer means for audiences."""
        if reply.status == 0:
            return f"{destination.url} fails: {reply.error}"
        return f"HTTP {reply.status} from {destination.url}: {SETUP_PROBLEMS.get(reply.status, 'retrying')}"

    async def send(self, job: AudienceJob, channel: Channel) -> None:
        """Create the segment, or write the memberships; every claimed membership gets an outcome."""
        try:
            if isinstance(job, CreateSegment):
                await self._create(job, channel)
            else:
                await self._write(job, channel)
        finally:
            self.busy.discard(job.audience)

    # Creating a segment ---------------------------------------------------------------------------------------

    async def _create(self, job: CreateSegment, channel: Channel) -> None:
        audience = job.audience
        name = self.delivery.settings.segment_name(audience)
        segment: str | None = None
        reason = "stopped before Pendo answered"
        part = f"audience {audience}"
        try:
            reply = await channel.post(create_body(name), url=self.delivery.create_url, max_answer_bytes=4096)
            ok = 200 <= reply.status < 300
            segment = created_segment_id(reply.text) if ok else None
            reason = reply.error if reply.status == 0 else f"HTTP {reply.status}: {' '.join(reply.text.split())}"
            if segment is None:
                failures = self.create_failures[audience] = self.create_failures.get(audience, 0) + 1
                # Created, perhaps, but no id in the answer: trying at once could create one segment after another.
                wait = self.settings.max_retry_seconds if ok else channel.retry_delay(reply, failures - 1)
                self.not_before[audience] = time.monotonic() + wait
        finally:
            if segment is None:
                failure = f"creating the Pendo segment {name!r} failed: {reason}"[:500]
                self.health.report(part, f"{failure}; trying again")
                await asyncio.shield(self.committer.write(lambda: self.store.creation_failed(audience, failure)))
        if segment is None:
            return
        self.create_failures.pop(audience, None)
        self.health.report(part, None)
        created = segment
        log.info("created Pendo segment %s for audience %s", segment, audience)
        # Another relay's creation recorded first (this one's ran past its lease) wins: one id for every relay.
        self.segments[audience] = await asyncio.shield(
            self.committer.write(lambda: self.store.record_segment(audience, created))
        )

    # Writing memberships --------------------------------------------------------------------------------------

    async def _write(self, job: WriteMemberships, channel: Channel) -> None:
        outcomes: dict[str, MembershipOutcome] = {}
        try:
            outcomes = await self._patches(job, channel)
        except asyncio.CancelledError:
            # Stopped mid-request: it may have arrived, and is sent again (the at-least-once window).
            raise
        except Exception as error:
            log.exception("writing audience %s failed unexpectedly", job.audience)
            reason = f"unexpected {type(error).__name__}: {error}"[:500]
            outcomes = {
                item.visitor: MembershipOutcome(item, "retry", channel.retry_delay(Reply(0), item.attempts), 0, reason)
                for item in job.claimed
                if item.visitor not in outcomes
            }
        finally:
            for item in job.claimed:
                outcome = outcomes.get(item.visitor, MembershipOutcome(item, "released"))
                if outcome.verdict in ("done", "dead"):
                    self.suspects.discard((job.audience, item.visitor))
                self.committer.settle(outcome)

    async def _patches(self, job: WriteMemberships, channel: Channel) -> dict[str, MembershipOutcome]:
        by_visitor = {item.visitor: item for item in job.claimed}
        alone = [item for item in job.claimed if (job.audience, item.visitor) in self.suspects]
        together = [item for item in job.claimed if (job.audience, item.visitor) not in self.suspects]
        outcomes: dict[str, MembershipOutcome] = {}
        for group in [together, *([item] for item in alone)]:
            for patch in plan_patches(_changes(group), self.delivery.settings.max_visitors):
                reply = await channel.post(
                    patch.content(),
                    url=self.delivery.segment_url(job.segment),
                    method="PATCH",
                    max_answer_bytes=MAX_ANSWER_BYTES,
                )
                for outcome in self._read(job.audience, patch, reply, by_visitor, channel):
                    outcomes[outcome.claimed.visitor] = outcome
                if reply.failed or reply.status == BUSY:
                    # The destination (or the segment) cannot take more now; the rest wait with their claims.
                    return outcomes | self._unsent(job, outcomes, reply, channel)
        return outcomes

    def _unsent(
        self, job: WriteMemberships, outcomes: dict[str, MembershipOutcome], reply: Reply, channel: Channel
    ) -> dict[str, MembershipOutcome]:
        reason = "not sent: an earlier request of the same claim failed"
        return {
            item.visitor: MembershipOutcome(item, "retry", channel.retry_delay(reply, item.attempts), 0, reason)
            for item in job.claimed
            if item.visitor not in outcomes
        }

    def _read(
        self,
        audience: str,
        patch: Patch,
        reply: Reply,
        by_visitor: dict[str, ClaimedMembership],
        channel: Channel,
    ) -> list[MembershipOutcome]:
        """Each visitor's outcome from Pendo's answer to one PATCH."""
        if reply.status == BUSY:
            self.not_before[audience] = time.monotonic() + BUSY_SECONDS
        if reply.status == 0 or reply.failed:
            reason = reply.error or f"HTTP {reply.status}: {' '.join(reply.text.split())}"[:300]
            claimed = [by_visitor[change.visitor] for change in patch.changes]
            return [
                MembershipOutcome(item, "retry", channel.retry_delay(reply, item.attempts), reply.status, reason)
                for item in claimed
            ]
        outcomes = []
        for result in read_patch_answer(reply.status, reply.text, patch).results:
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
                    delay = BUSY_SECONDS if result.status == BUSY else channel.retry_delay(reply, item.attempts)
                outcomes.append(MembershipOutcome(item, verdict, delay, result.status, result.reason))
        return outcomes


def _changes(items: Iterable[ClaimedMembership]) -> list[Change]:
    return [Change(item.visitor, item.member, item.version) for item in items]
