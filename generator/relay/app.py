"""The relay's HTTP side: Segment-spec events in (single or batch), authenticated, size-limited, stored."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from generator.fql import evaluate_fql, parse_fql
from generator.relay.convert import TOO_OLD, RejectedEvent, VisitorRule, message_id, too_old_for_pendo, track_body
from generator.relay.delivery import Deliverer, DeliverySettings
from generator.relay.outbox import SqliteOutbox

# Segment's own HTTP API takes at most 500 KB per batch request.
MAX_BODY_BYTES = 500 * 1024
MAX_DRAINED_BYTES = 8 * MAX_BODY_BYTES


@dataclass(frozen=True)
class RelaySettings:
    """What the relay needs to run."""

    shared_secret: str
    delivery: DeliverySettings
    visitor_rule: VisitorRule = "user_id_or_anonymous"
    # The config's [webhook] subscribe: the same events go to Pendo as through Segment's webhook.
    subscribe: str = 'type = "track"'


def authorized(request: Request, body: bytes, secret: str) -> bool:
    """Segment's X-Signature (HMAC-SHA1 of the body) when sent, else HTTP Basic with the secret as user or password."""
    signature = request.headers.get("x-signature")
    if signature is not None:
        expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        return hmac.compare_digest(signature, expected)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(credentials).decode().partition(":")
    except ValueError:
        return False
    return hmac.compare_digest(user, secret) or hmac.compare_digest(password, secret)


def create_app(outbox: SqliteOutbox, settings: RelaySettings) -> Starlette:
    """The ASGI app; its lifespan runs the deliverer."""
    deliverer = Deliverer(outbox, settings.delivery)
    selected = parse_fql(settings.subscribe)

    async def receive(request: Request) -> JSONResponse:
        body = await _read_limited(request)
        if isinstance(body, JSONResponse):
            return body
        if not authorized(request, body, settings.shared_secret):
            return _error(401, "missing or wrong credentials: send X-Signature or HTTP Basic with the shared secret")
        decoded = _decoded(body, request.headers.get("content-encoding", ""))
        if isinstance(decoded, JSONResponse):
            return decoded
        try:
            document = json.loads(decoded)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return _error(400, f"body is not JSON: {error}")
        is_batch = isinstance(document, dict) and isinstance(document.get("batch"), list)
        events = document["batch"] if is_batch else [document]
        accepted, duplicates, skipped, rejected = 0, 0, 0, []
        for index, event in enumerate(events):
            try:
                pendo_body = track_body(event, settings.visitor_rule)
            except RejectedEvent as error:
                rejected.append({"index": index, "reason": str(error)})
                continue
            if too_old_for_pendo(pendo_body, time.time() * 1000):
                rejected.append({"index": index, "reason": TOO_OLD})
            elif not evaluate_fql(selected, event):
                skipped += 1
            elif outbox.add(message_id(event), pendo_body):
                accepted += 1
            else:
                duplicates += 1
        deliverer.wake.set()
        status = 422 if rejected and not (accepted or duplicates or skipped) else 200
        counts = {"accepted": accepted, "duplicates": duplicates, "skipped": skipped, "rejected": rejected}
        return JSONResponse(counts, status_code=status)

    async def healthz(request: Request) -> JSONResponse:
        pending = outbox.stats()["pending"]
        if deliverer.problem:
            return JSONResponse({"status": "degraded", "problem": deliverer.problem, "pending": pending})
        return JSONResponse({"status": "ok", "pending": pending})

    async def metrics(request: Request) -> JSONResponse:
        return JSONResponse({**outbox.stats(), "dead_letters": outbox.dead_letters()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        yield
        stop.set()
        deliverer.wake.set()
        await task
        outbox.close()

    routes = [
        Route("/v1/track", receive, methods=["POST"]),
        Route("/v1/batch", receive, methods=["POST"]),
        Route("/", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _read_limited(request: Request) -> bytes | JSONResponse:
    """The request body, or a 413 when it is over MAX_BODY_BYTES."""
    body = b""
    received = 0
    # An oversized body is still read (up to a bound) and dropped: answering while the sender is still
    # writing would close the connection under it, and it would see a reset instead of the 413.
    async for chunk in request.stream():
        received += len(chunk)
        if received <= MAX_BODY_BYTES:
            body += chunk
        elif received > MAX_DRAINED_BYTES:
            break
    if received > MAX_BODY_BYTES:
        return _error(413, f"body over {MAX_BODY_BYTES} bytes")
    return body


def _decoded(body: bytes, encoding: str) -> bytes | JSONResponse:
    """The body as sent, or gunzipped (some Segment-spec libraries compress); at most MAX_BODY_BYTES either way."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        return _error(415, f"Content-Encoding {encoding!r} is not supported; send the body as is or gzipped")
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # Bounded, so a small compressed body cannot expand into gigabytes here.
        plain = decompressor.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as error:
        return _error(400, f"body is not valid gzip: {error}")
    if len(plain) > MAX_BODY_BYTES:
        return _error(413, f"body over {MAX_BODY_BYTES} bytes once decompressed")
    if not decompressor.eof:
        return _error(400, "body is not valid gzip: it ends early")
    return plain


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
