"""The relay's HTTP side: Segment-spec events in (single or batch), authenticated, size-limited, stored.

Its lifespan runs the background tasks, each supervised: the committer (every write to the outbox), the
deliverers (on the delivery engine: one loop per destination) and the pruner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from generator.errors import StorageError
from generator.fql import parse_fql
from generator.relay.audience_delivery import AudienceDeliverer, AudienceDelivery
from generator.relay.audiences import AUDIENCES
from generator.relay.auth import NO_CREDENTIALS, header_problem, signature_matches
from generator.relay.committer import Committer
from generator.relay.convert import PENDO_MAX_AGE_MS, VisitorRule
from generator.relay.delivery import TRACK, TrackDeliverer
from generator.relay.engine import Deliverer, DeliverySettings, Destination, Engine
from generator.relay.health import Health, supervise
from generator.relay.intake import Converted, Refused, convert, decoded, parse, read_body
from generator.relay.limits import PendoLimits
from generator.relay.metadata_delivery import MetadataDeliverer, MetadataDelivery
from generator.relay.metrics import (
    audience_counts,
    audience_prometheus,
    destinations_text,
    limits_text,
    prometheus_text,
)
from generator.relay.outbox import Outbox

DAY_MS = 24 * 3600 * 1000
# Parsing and converting a body this large takes long enough to hold up other requests: a worker thread does it.
OFFLOAD_BYTES = 32 * 1024
RECENT_DEAD_LETTERS = 100
PRUNE_CHUNK = 5_000


@dataclass(frozen=True)
class RelaySettings:
    """What the relay needs to run."""

    shared_secret: str
    destinations: list[Destination]
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    visitor_rule: VisitorRule = "user_id_or_anonymous"
    # The config's [webhook] subscribe: the same events go to Pendo as through Segment's webhook.
    subscribe: str = 'type = "track"'
    # When set, /metrics and the details of /healthz need the shared secret too.
    private_details: bool = False
    prune_every_seconds: float = 600.0
    # A sender gets this long to send its headers (enforced by the server) and twice as long for its body.
    client_timeout_seconds: float = 10.0
    # The config's [metadata] with the Integration Key: identify and group calls go to Pendo's metadata API.
    metadata: MetadataDelivery | None = None
    # The config's [audiences] with the Integration Key: Engage audience calls go to Pendo Segments.
    audiences: AudienceDelivery | None = None


def create_app(outbox: Outbox, settings: RelaySettings) -> Starlette:
    """The ASGI app; its lifespan runs the background tasks."""
    relay = _Relay(outbox, settings)
    routes = [
        Route("/v1/track", relay.receive, methods=["POST"]),
        Route("/v1/batch", relay.receive, methods=["POST"]),
        Route("/", relay.receive, methods=["POST"]),
        Route("/healthz", relay.healthz, methods=["GET"]),
        Route("/metrics", relay.metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=relay.lifespan)


class _Relay:
    """The handlers and background tasks over one outbox."""

    def __init__(self, outbox: Outbox, settings: RelaySettings) -> None:
        self.outbox = outbox
        self.settings = settings
        self.health = Health()
        self.committer = Committer(outbox, self.health)
        self.engine = Engine(self.committer, settings.delivery, self.health)
        self.deliverer = TrackDeliverer(self.committer, settings.destinations, settings.delivery, self.health)
        self.engine.add(self.deliverer)
        self.metadata = (
            MetadataDeliverer(self.committer, settings.metadata, settings.delivery, self.health)
            if settings.metadata is not None
            else None
        )
        if self.metadata is not None:
            self.engine.add(self.metadata)
        self.audiences = (
            AudienceDeliverer(self.committer, settings.audiences, settings.delivery, self.health)
            if settings.audiences is not None
            else None
        )
        if self.audiences is not None:
            self.engine.add(self.audiences)
        self.selected = parse_fql(settings.subscribe)
        self.limits = PendoLimits()

    def _parse_and_convert(self, plain: bytes) -> Converted:
        metadata = self.settings.metadata.settings if self.settings.metadata is not None else None
        audiences = self.settings.audiences.settings if self.settings.audiences is not None else None
        return convert(
            parse(plain), self.settings.visitor_rule, self.selected, metadata, audiences, inspect=self.limits.inspect
        )

    def _paused(self) -> dict[str, float]:
        return self.engine.paused()

    def _wake(self, deliverer: Deliverer[Any]) -> None:
        self.engine.wake({destination.name for destination in deliverer.destinations})

    async def receive(self, request: Request) -> Response:
        secret = self.settings.shared_secret
        problem = header_problem(request.headers, secret)
        if problem is not None:
            return _error(401, problem, {"WWW-Authenticate": 'Basic realm="relay"'})
        try:
            deadline = 2 * self.settings.client_timeout_seconds
            body = await read_body(request.stream(), request.headers.get("content-length"), deadline)
            if not signature_matches(request.headers, body, secret):
                return _error(401, NO_CREDENTIALS)
            plain = decoded(body, request.headers.get("content-encoding", ""))
            if len(plain) > OFFLOAD_BYTES:
                converted = await asyncio.to_thread(self._parse_and_convert, plain)
            else:
                converted = self._parse_and_convert(plain)
        except Refused as refusal:
            return _error(refusal.status, refusal.reason)
        stored: list[bool] = []
        if converted.events:
            try:
                stored = await self.committer.add(converted.events)
            except StorageError as error:
                return _error(503, f"the relay cannot store events now: {error}", {"Retry-After": "10"})
            if any(event.destination == TRACK for event in converted.events):
                self._wake(self.deliverer)
            if self.metadata is not None and any(event.destination != TRACK for event in converted.events):
                self._wake(self.metadata)
            if self.audiences is not None and any(event.destination == AUDIENCES for event in converted.events):
                self._wake(self.audiences)
        accepted, duplicates = converted.counts(stored)
        counts: dict[str, Any] = {
            "accepted": accepted,
            "duplicates": duplicates,
            "skipped": converted.skipped,
            "rejected": converted.rejected,
        }
        if converted.dropped:
            counts["dropped"] = converted.dropped
        status = 422 if converted.rejected and not (stored or converted.skipped) else 200
        return JSONResponse(counts, status_code=status)

    def _may_see_details(self, request: Request) -> bool:
        private = self.settings.private_details
        return not private or header_problem(request.headers, self.settings.shared_secret) is None

    async def healthz(self, request: Request) -> Response:
        health = self.health
        document: dict[str, Any] = {"status": "ok" if health.ok else "degraded"}
        if self._may_see_details(request):
            try:
                pending: int | None = (await self.committer.read(self.outbox.stats))["pending"]
            except StorageError as error:
                health.report("storage", f"outbox reads fail: {error}")
                pending = None
            problems = health.problems()
            document |= {"pending": pending, "problems": problems, "paused": self._paused()}
            document["destinations"] = self.engine.describe()
        document["status"] = "ok" if health.ok else "degraded"
        return JSONResponse(document, status_code=200 if health.ok else 503)

    async def metrics(self, request: Request) -> Response:
        if not self._may_see_details(request):
            return _error(401, NO_CREDENTIALS, {"WWW-Authenticate": 'Basic realm="relay"'})
        try:
            stats = await self.committer.read(self.outbox.stats)
            dead_letters = await self.committer.read(partial(self.outbox.dead_letters, RECENT_DEAD_LETTERS))
        except StorageError as error:
            return _error(503, f"the relay cannot read its outbox now: {error}")
        windows = self.engine.windows()
        problems = self.health.problems()
        audiences = await self._audience_counts() if self.audiences is not None else None
        if _wants_prometheus(request):
            text = prometheus_text(stats, problems, windows, self._paused())
            text += destinations_text(self.engine.describe()) + limits_text(self.limits.counts)
            text += audience_prometheus(audiences or {})
            return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
        group_commit = {"commits": self.committer.intake_commits, "events": self.committer.intake_events}
        document: dict[str, Any] = {
            **stats,
            "problems": problems,
            "concurrency": windows,
            "group_commit": group_commit,
            "dead_letters": dead_letters,
            "destinations": self.engine.describe(),
            "pendo_limits": dict(self.limits.counts),
        }
        if self.metadata is not None:
            document["metadata"] = {
                "held": self.metadata.held(),
                "bodies": self.metadata.bodies_sent,
                "rows": self.metadata.rows_sent,
            }
        if audiences is not None:
            document["audiences"] = audiences
        return JSONResponse(document)

    async def _audience_counts(self) -> dict[str, dict[str, Any]]:
        assert self.audiences is not None
        try:
            rows = await self.committer.read(self.outbox.audience_rows)
        except StorageError as error:
            return {"error": {"reason": str(error)}}
        return audience_counts(rows, self.audiences.segment_of)

    async def _prune_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Any replay of a forgotten messageId is now too old to be accepted, so nothing is delivered
            # twice; a day's margin covers clock differences between senders.
            before = time.time() * 1000 - PENDO_MAX_AGE_MS - DAY_MS
            while await self.committer.write(partial(self.outbox.prune, before, PRUNE_CHUNK)) == PRUNE_CHUNK:
                await asyncio.sleep(0)  # other writes get their turn between chunks
            self.health.report("pruner", None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.prune_every_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        stop, stop_writes = asyncio.Event(), asyncio.Event()

        def supervised(name: str, task: Callable[[], Awaitable[None]], until: asyncio.Event) -> asyncio.Task[None]:
            return asyncio.create_task(supervise(name, task, self.health, until))

        writer = supervised("committer", lambda: self.committer.run(stop_writes), stop_writes)
        workers = [
            supervised("deliverer", lambda: self.engine.run(self.deliverer, stop), stop),
            supervised("pruner", lambda: self._prune_forever(stop), stop),
        ]
        metadata = self.metadata
        if metadata is not None:
            workers.append(supervised("metadata deliverer", lambda: self.engine.run(metadata, stop), stop))
        audiences = self.audiences
        if audiences is not None:
            workers.append(supervised("audiences deliverer", lambda: self.engine.run(audiences, stop), stop))
        yield
        stop.set()
        self.engine.wake()
        await asyncio.gather(*workers)
        # Only now: the deliverer's last outcomes are written before the outbox closes.
        stop_writes.set()
        await writer
        self.committer.close()
        self.outbox.close()


def _wants_prometheus(request: Request) -> bool:
    if request.query_params.get("format") == "prometheus":
        return True
    accept = request.headers.get("accept", "")
    return ("text/plain" in accept or "openmetrics" in accept) and "application/json" not in accept


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
