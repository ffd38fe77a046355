"""From a request body to the events to store: bounded reading, gzip, JSON, conversion, refusals with reasons."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from generator.audiences_config import AudienceSettings
from generator.fql import evaluate_fql
from generator.metadata_config import MetadataSettings
from generator.relay.audiences import AUDIENCES, audience_key, check_membership_age, membership
from generator.relay.convert import (
    RejectedEvent,
    VisitorRule,
    body_text,
    check_sendable,
    check_time,
    message_id,
    parse_integer,
    track_body,
)
from generator.relay.delivery import TRACK
from generator.relay.metadata_rows import METADATA_CALLS, metadata_rows
from generator.relay.outbox import NewEvent

# Segment's own HTTP API takes at most 500 KB per batch request.
MAX_BODY_BYTES = 500 * 1024
MAX_DRAINED_BYTES = 8 * MAX_BODY_BYTES
# A sender that cannot get 500 KB through in this long is stuck, or holding connections on purpose.
BODY_SECONDS = 20.0
# Calls of Segment's spec that Pendo has no API for: answered 200 as Segment answers them, counted, not stored.
NOT_FORWARDED = ("page", "screen", "alias")
# Segment's HTTP API takes one call of each kind at its own route, where `type` may be left out.
SINGLE_CALLS = ("track", "identify", "group", "page", "screen", "alias")


class Refused(Exception):
    """The whole request is refused: an HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        """Refuse with status, saying why."""
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Converted:
    """What a body holds: the events to store, how many were not selected, which were refused and why.

    An identify or group call is stored as one entry per Pendo record kind and field group it writes;
    `origins` says which call of the body each entry in `events` comes from, and `dropped` which of its
    values were left out (and why).
    """

    events: list[NewEvent] = field(default_factory=list)
    skipped: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    not_forwarded: dict[str, int] = field(default_factory=dict)  # by call type

    def counts(self, stored: list[bool]) -> tuple[int, int]:
        """(accepted, duplicates) by call: a call is new when any of its entries was."""
        new: dict[int, bool] = {}
        for origin, added in zip(self.origins, stored, strict=True):
            new[origin] = new.get(origin, False) or added
        accepted = sum(new.values())
        return accepted, len(new) - accepted


async def read_body(
    chunks: AsyncIterator[bytes], declared_length: str | None, deadline_seconds: float = BODY_SECONDS
) -> bytes:
    """The body, within MAX_BODY_BYTES and deadline_seconds; Refused (413, 408) otherwise."""
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > MAX_DRAINED_BYTES:
        raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
    parts: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(deadline_seconds):
            # An oversized body is still read (up to a bound) and dropped: answering while the sender is still
            # writing would close the connection under it, and it would see a reset instead of the 413.
            async for chunk in chunks:
                received += len(chunk)
                if received <= MAX_BODY_BYTES:
                    parts.append(chunk)
                elif received > MAX_DRAINED_BYTES:
                    break
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {deadline_seconds:g}s") from None
    if received > MAX_BODY_BYTES:
        raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
    return b"".join(parts)


def decoded(body: bytes, encoding: str) -> bytes:
    """The body as sent, or gunzipped (some Segment-spec libraries compress); at most MAX_BODY_BYTES either way."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise Refused(415, f"Content-Encoding {encoding[:40]!r} is not supported; send the body as is or gzipped")
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # Bounded, so a small compressed body cannot expand into gigabytes here.
        plain = decompressor.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as error:
        raise Refused(400, f"body is not valid gzip: {error}") from None
    if len(plain) > MAX_BODY_BYTES:
        raise Refused(413, f"body over {MAX_BODY_BYTES} bytes once decompressed")
    if not decompressor.eof:
        raise Refused(400, "body is not valid gzip: it ends early")
    if decompressor.unused_data:
        raise Refused(400, "body has data after the end of its gzip stream")
    return plain


def parse(text: bytes, call: str | None = None) -> list[Any]:
    """The events in a body: one event, or Segment's {"batch": [...]}; at a call's own route, one call of it."""
    try:
        document = json.loads(text, parse_int=parse_integer)
    except RecursionError:
        raise Refused(400, "body is not JSON the relay takes: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise Refused(400, f"body is not JSON: {str(error)[:200]}") from None
    if call == "track":
        # /v1/track has always taken batches and calls of any type too; a call there without a type is a track.
        if isinstance(document, dict) and "type" not in document and "batch" not in document:
            return [{**document, "type": "track"}]
    elif call is not None:
        return [single_call(document, call)]
    if isinstance(document, dict) and isinstance(document.get("batch"), list):
        return list(document["batch"])
    if isinstance(document, list):
        # Segment's Webhooks (Actions) destination posts a batch as a bare list of events.
        return document
    return [document]


def single_call(document: Any, call: str) -> Any:
    """The body of /v1/<call>: one event object whose type, when given, is that call (the route says it if not)."""
    if not isinstance(document, dict) or "batch" in document:
        raise Refused(400, f"/v1/{call} takes one {call} call as a JSON object; send batches to /v1/batch")
    given = document.get("type", call)
    if given != call:
        shown = given[:40] if isinstance(given, str) else given
        raise Refused(400, f"/v1/{call} takes {call} calls, and this one's type is {shown!r}")
    return {**document, "type": call}


def convert(
    events: list[Any],
    visitor_rule: VisitorRule,
    selected: Any,
    metadata: MetadataSettings | None = None,
    audiences: AudienceSettings | None = None,
    *,
    inspect: Callable[[dict[str, Any], str], None] | None = None,
) -> Converted:
    """Each event checked and converted to what is stored; refusals name the event's index and the field.

    Identify and group calls go to Pendo's metadata API when the config has `[metadata]`; otherwise they are
    refused as before (only track events go to the Track Events API). With `[audiences]`, Engage's audience calls
    (identify or track) go to Pendo Segments instead, and only there. `inspect` sees each track event's Pendo body
    (and its JSON text) before it is stored.
    """
    result = Converted()
    now_ms = time.time() * 1000
    for index, event in enumerate(events):
        if isinstance(event, dict) and event.get("type") in NOT_FORWARDED:
            result.not_forwarded[event["type"]] = result.not_forwarded.get(event["type"], 0) + 1
            continue
        try:
            check_sendable(event)
            key = audience_key(event) if audiences is not None else None
            if audiences is not None and key is not None:
                if not audiences.sends(key):
                    result.skipped += 1
                    continue
                call = membership(event, key, audiences)
                check_membership_age(call.timestamp_ms, now_ms)
                result.events.append(NewEvent(f"{call.message_id}#audience", AUDIENCES, call.body(), call.timestamp_ms))
                result.origins.append(index)
                continue
            if metadata is not None and isinstance(event, dict) and event.get("type") in METADATA_CALLS:
                rows = metadata_rows(event, metadata, visitor_rule, now_ms)
                result.dropped.extend({"index": index, "reason": reason} for reason in rows.dropped)
                if not rows.events:
                    result.skipped += 1
                result.events.extend(rows.events)
                result.origins.extend([index] * len(rows.events))
                continue
            pendo_body = track_body(event, visitor_rule)
            check_time(pendo_body, now_ms)
            if not evaluate_fql(selected, event):
                result.skipped += 1
                continue
            text = body_text(pendo_body)
            if inspect is not None:
                inspect(pendo_body, text)
            result.events.append(NewEvent(message_id(event), TRACK, text, pendo_body["timestamp"]))
            result.origins.append(index)
        except RejectedEvent as error:
            result.rejected.append({"index": index, "reason": str(error)})
    return result
