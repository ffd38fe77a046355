"""The relay's HTTP side: Segment-spec events in (single or batch), authenticated, size-limited, stored.

Its lifespan runs the background tasks, each supervised: the committer (every write to the outbox), the
deliverers (on the delivery engine: one loop per destination), the pruner and the outbox watch (readiness;
opening an outbox that could not be opened at start). /livez, /readyz and /healthz answer for the relay itself,
never for Pendo's health.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from generator.errors import StorageError
from generator.fql import parse_fql
from generator.relay.audience_delivery import AudienceDeliverer, AudienceDelivery
from generator.relay.audiences import AUDIENCES
from generator.relay.auth import NO_CREDENTIALS, header_problem, signature_matches
from generator.relay.client_faults import ClientFaults
from generator.relay.committer import Committer
from generator.relay.convert import PENDO_MAX_AGE_MS, VisitorRule
from generator.relay.delivery import TRACK, TrackDeliverer
from generator.relay.engine import Deliverer, DeliverySettings, Destination, Engine
from generator.relay.health import Health, supervise
from generator.relay.intake import SINGLE_CALLS, Converted, Refused, convert, decoded, parse, read_body
from generator.relay.late_outbox import LateOutbox
from generator.relay.limits import PendoLimits
from generator.relay.metadata_delivery import MetadataDeliverer, MetadataDelivery
from generator.relay.metrics import (
    audience_counts,
    audience_prometheus,
    destinations_text,
    limits_text,
    operations_text,
    prometheus_text,
)
from generator.relay.outbox import NewEvent, Outbox
from generator.relay.readiness import Readiness

DAY_MS = 24 * 3600 * 1000
# Parsing and converting a body this large takes long enough to hold up other requests: a worker thread does it.
OFFLOAD_BYTES = 32 * 1024
RECENT_DEAD_LETTERS = 100
PRUNE_CHUNK = 5_000
# /healthz counts the backlog of every destination (a scan of what waits): the longest a count is reused.
BACKLOG_SECONDS = 5.0
RETRY_AFTER_SECONDS = "10"
# Longer than any round of writes can take while its storage works (each PostgreSQL statement times out after
# 60 s, SQLite waits 5 s for a lock): a round under way for longer is stuck (a hung disk or connection), and only
# a restart ends it.
STUCK_WRITE_SECONDS = 300.0


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
    # Dead letters older than this are forgotten by the pruner.
    dead_letter_days: float = 14.0


def create_app(outbox: Outbox | LateOutbox, settings: RelaySettings, faults: ClientFaults | None = None) -> Starlette:
    """The ASGI app; its lifespan runs the background tasks. Senders' faults are counted in faults."""
    late = outbox if isinstance(outbox, LateOutbox) else LateOutbox(lambda: outbox, "")
    relay = _Relay(late, settings, faults or ClientFaults())
    routes = [
        Route("/v1/track", partial(relay.receive, call="track"), methods=["POST"]),
        Route("/v1/batch", relay.receive, methods=["POST"]),
        Route("/", relay.receive, methods=["POST"]),
        *(
            Route(f"/v1/{call}", partial(relay.receive, call=call), methods=["POST"])
            for call in SINGLE_CALLS
            if call != "track"
        ),
        Route("/livez", relay.livez, methods=["GET"]),
        Route("/readyz", relay.readyz, methods=["GET"]),
        Route("/healthz", relay.healthz, methods=["GET"]),
        Route("/metrics", relay.metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=relay.lifespan)


class _Relay:
    """The handlers and background tasks over one outbox."""

    def __init__(self, outbox: LateOutbox, settings: RelaySettings, faults: ClientFaults) -> None:
        self.outbox = outbox
        self.settings = settings
        self.faults = faults
        self.health = Health()
        self.committer = Committer(outbox, self.health)
        self.readiness = Readiness(outbox, self.committer, self.health)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        self.not_forwarded: Counter[str] = Counter()
        self._backlog: tuple[float, float, dict[str, tuple[int, float]] | None] = (0.0, 0.0, None)
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
        # An outbox that opens late (a full disk, a database that was down): every destination looks again.
        self.readiness.on_open(self.engine.wake)

    def _parse_and_convert(self, plain: bytes, call: str | None) -> Converted:
        metadata = self.settings.metadata.settings if self.settings.metadata is not None else None
        audiences = self.settings.audiences.settings if self.settings.audiences is not None else None
        return convert(
            parse(plain, call),
            self.settings.visitor_rule,
            self.selected,
            metadata,
            audiences,
            inspect=self.limits.inspect,
        )

    def _paused(self) -> dict[str, float]:
        return self.engine.paused()

    def _wake(self, deliverer: Deliverer[Any]) -> None:
        self.engine.wake({destination.name for destination in deliverer.destinations})

    async def receive(self, request: Request, call: str | None = None) -> Response:
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
                converted = await asyncio.to_thread(self._parse_and_convert, plain, call)
            else:
                converted = self._parse_and_convert(plain, call)
        except Refused as refusal:
            if refusal.status == 408:
                self.faults.note("slow_body")
            return _error(refusal.status, refusal.reason)
        except ClientDisconnect:
            # Nobody is left to answer; what arrived of the body is dropped, nothing was stored.
            self.faults.note("disconnected")
            return Response(status_code=400)
        if converted.not_forwarded:
            self.not_forwarded.update(converted.not_forwarded)
        stored: list[bool] = []
        if converted.events:
            try:
                stored = await self.committer.add(converted.events)
            except StorageError as error:
                return _error(503, f"the relay cannot store events now: {error}", {"Retry-After": RETRY_AFTER_SECONDS})
            self._wake_for(converted.events)
        return _answer(converted, stored)

    def _wake_for(self, events: list[NewEvent]) -> None:
        """Wake the deliverers of what was just stored."""
        if any(event.destination == TRACK for event in events):
            self._wake(self.deliverer)
        if self.metadata is not None and any(event.destination not in {TRACK, AUDIENCES} for event in events):
            self._wake(self.metadata)
        if self.audiences is not None and any(event.destination == AUDIENCES for event in events):
            self._wake(self.audiences)

    def _may_see_details(self, request: Request) -> bool:
        private = self.settings.private_details
        return not private or header_problem(request.headers, self.settings.shared_secret) is None

    def _dead_tasks(self) -> list[str]:
        """Supervised tasks that have stopped for good, or (the committer) are stuck in one write."""
        if self.stopping:
            return []
        dead = [name for name, task in self.tasks.items() if task.done()]
        writing_since = self.committer.writing_since
        if writing_since is not None and time.monotonic() - writing_since > STUCK_WRITE_SECONDS:
            dead.append(f"committer (one write has taken over {STUCK_WRITE_SECONDS:g}s)")
        return sorted(dead)

    async def livez(self, request: Request) -> Response:
        """200 while the process serves and every supervised task runs (failing ones are restarted, so they do)."""
        dead = self._dead_tasks()
        if not dead:
            return JSONResponse({"status": "alive"})
        document: dict[str, Any] = {"status": "dead"}
        if self._may_see_details(request):
            document["stopped"] = dead
        return JSONResponse(document, status_code=503)

    async def readyz(self, request: Request) -> Response:
        """200 when intake can accept and store events; 503 (with Retry-After) while the outbox cannot."""
        problem = self.readiness.problem
        if problem is None and not self._dead_tasks():
            return JSONResponse({"status": "ready"})
        document: dict[str, Any] = {"status": "not ready"}
        if self._may_see_details(request):
            document["reason"] = problem or f"stopped: {', '.join(self._dead_tasks())}"
        return JSONResponse(document, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})

    async def healthz(self, request: Request) -> Response:
        """The relay's own state in the status (never Pendo's); every destination's in the details."""
        problems = self.health.problems()
        own = {part: problem for part, problem in problems.items() if not part.startswith(PENDO_PARTS)}
        healthy = not own and not self._dead_tasks()
        document: dict[str, Any] = {"status": "ok" if healthy else "degraded"}
        if self._may_see_details(request):
            backlog = await self._backlog_by_destination()
            pending = sum(count for count, _ in backlog.values()) if backlog is not None else None
            document |= {
                "ready": self.readiness.problem is None,
                "pending": pending,
                "problems": problems,
                "paused": self._paused(),
                "destinations": self._destinations(problems, backlog),
            }
        return JSONResponse(document, status_code=200 if healthy else 503)

    async def _backlog_by_destination(self) -> dict[str, tuple[int, float]] | None:
        """Per destination, what waits and since when.

        A count is reused for ten times as long as it took (up to BACKLOG_SECONDS): a backlog of millions asked
        for every second costs little, a small one is exact.
        """
        taken, cost, backlog = self._backlog
        if backlog is None or time.monotonic() - taken > min(BACKLOG_SECONDS, 10 * cost):
            started = time.monotonic()
            try:
                backlog = await self.committer.read(self.outbox.pending_by_destination)
            except StorageError:
                return None  # the storage problem is in problems (the committer's or the outbox watch's)
            self._backlog = (time.monotonic(), time.monotonic() - started, backlog)
        return backlog

    def _destinations(
        self, problems: dict[str, str], backlog: dict[str, tuple[int, float]] | None
    ) -> dict[str, dict[str, Any]]:
        """One object per destination: the engine's brake, probe, rate and window, and its state, problem and backlog.

        state is what an operator reads first: "paused" while Pendo asked the relay to slow down (429, or 503 with
        Retry-After), "failing" while Pendo's answers fail otherwise, "ok" when neither.
        """
        engine = self.engine.describe()
        paused = self._paused()
        names = [*engine, *sorted(set(backlog or {}) - set(engine))]
        now = time.time()
        destinations: dict[str, dict[str, Any]] = {}
        for name in names:
            problem = problems.get(f"{DESTINATION_PART}{name}")
            described = engine.get(name, {})
            state = "paused" if described.get("throttled") else "failing" if problem else "ok"
            entry: dict[str, Any] = {"state": state, **described}
            if name in paused:
                entry["paused_seconds"] = paused[name]
            if problem:
                entry["problem"] = problem
            if backlog is not None:
                count, oldest = backlog.get(name, (0, now))
                entry["pending"] = count
                entry["oldest_pending_seconds"] = round(max(now - oldest, 0.0), 3) if count else None
            destinations[name] = entry
        return destinations

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
        destinations = self._destinations(problems, await self._backlog_by_destination())
        audiences = await self._audience_counts() if self.audiences is not None else None
        clients = self.faults.snapshot()
        if _wants_prometheus(request):
            text = prometheus_text(stats, problems, windows, self._paused())
            text += destinations_text(destinations) + limits_text(self.limits.counts)
            text += audience_prometheus(audiences or {})
            text += operations_text(clients, dict(self.not_forwarded), ready=self.readiness.problem is None)
            return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
        group_commit = {"commits": self.committer.intake_commits, "events": self.committer.intake_events}
        document: dict[str, Any] = {
            **stats,
            "problems": problems,
            "concurrency": windows,
            "group_commit": group_commit,
            "dead_letters": dead_letters,
            "destinations": destinations,
            "pendo_limits": dict(self.limits.counts),
            "clients": clients,
            "not_forwarded": dict(self.not_forwarded),
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
            if self.outbox.store is None:
                # Nothing to prune before the outbox opens (the outbox watch says why it has not).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                continue
            # Any replay of a forgotten messageId is now too old to be accepted, so nothing is delivered
            # twice; a day's margin covers clock differences between senders.
            before = time.time() * 1000 - PENDO_MAX_AGE_MS - DAY_MS
            while await self.committer.write(partial(self.outbox.prune, before, PRUNE_CHUNK)) == PRUNE_CHUNK:
                await asyncio.sleep(0)  # other writes get their turn between chunks
            dead_before = time.time() - self.settings.dead_letter_days * DAY_MS / 1000
            prune_dead = partial(self.outbox.prune_dead_letters, dead_before, PRUNE_CHUNK)
            while await self.committer.write(prune_dead) == PRUNE_CHUNK:
                await asyncio.sleep(0)
            self.health.report("pruner", None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.prune_every_seconds)

    def _workers(self, stop: asyncio.Event) -> dict[str, Callable[[], Awaitable[None]]]:
        """The background tasks beside the committer, by the name /healthz and /livez give them."""
        workers: dict[str, Callable[[], Awaitable[None]]] = {
            "outbox": lambda: self.readiness.watch(stop),
            "pruner": lambda: self._prune_forever(stop),
        }
        deliverers: list[Deliverer[Any] | None] = [self.deliverer, self.metadata, self.audiences]
        for deliverer in deliverers:
            if deliverer is not None:
                workers[deliverer.task_name] = partial(self.engine.run, deliverer, stop)
        return workers

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        stop, stop_writes = asyncio.Event(), asyncio.Event()

        def supervised(name: str, task: Callable[[], Awaitable[None]], until: asyncio.Event) -> asyncio.Task[None]:
            return asyncio.create_task(supervise(name, task, self.health, until))

        writer = supervised("committer", lambda: self.committer.run(stop_writes), stop_writes)
        self.tasks = {"committer": writer}
        for name, work in self._workers(stop).items():
            self.tasks[name] = supervised(name, work, stop)
        workers = [task for name, task in self.tasks.items() if name != "committer"]
        yield
        self.stopping = True
        stop.set()
        self.engine.wake()
        # A task that ended anyhow (its failure is in /livez) must not keep the others' outcomes from being written.
        await asyncio.gather(*workers, return_exceptions=True)
        # Only now: the deliverer's last outcomes are written before the outbox closes.
        stop_writes.set()
        await writer
        self.committer.close()
        self.outbox.close()


DESTINATION_PART = "destination "
# Problems that are Pendo's (its answers to a destination, or to an audience's segment creation): shown in /healthz,
# never its status, so that a load balancer keeps a relay in service while Pendo fails.
PENDO_PARTS = (DESTINATION_PART, "audience ")


def _answer(converted: Converted, stored: list[bool]) -> JSONResponse:
    """What a sender is told: counts by outcome, 422 when nothing in the body could be taken."""
    accepted, duplicates = converted.counts(stored)
    counts: dict[str, Any] = {
        "accepted": accepted,
        "duplicates": duplicates,
        "skipped": converted.skipped,
        "rejected": converted.rejected,
    }
    if converted.dropped:
        counts["dropped"] = converted.dropped
    not_forwarded = sum(converted.not_forwarded.values())
    if not_forwarded:
        counts["not_forwarded"] = not_forwarded
    status = 422 if converted.rejected and not (stored or converted.skipped or not_forwarded) else 200
    return JSONResponse(counts, status_code=status)


def _wants_prometheus(request: Request) -> bool:
    if request.query_params.get("format") == "prometheus":
        return True
    accept = request.headers.get("accept", "")
    return ("text/plain" in accept or "openmetrics" in accept) and "application/json" not in accept


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
