"""One Segment-spec track event → the body of a Pendo Track Events API request."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from typing import Any, Literal

ANONYMOUS_PREFIX = "_PENDO_T_"
MAX_TEXT = 10_000
# Pendo does not process track events whose timestamp is more than seven days old.
PENDO_MAX_AGE_MS = 7 * 24 * 3600 * 1000
TOO_OLD = "the timestamp is more than 7 days old; Pendo does not process older track events"

# The config's [on_load] visitor_id. "none" (let Pendo's agent make up an id) has no meaning without a
# browser, so server events then follow the default rule.
VisitorRule = Literal["user_id", "user_id_or_anonymous", "anonymous", "none"]


class RejectedEvent(ValueError):
    """An event Pendo's Track Events API cannot take; the message says why."""


def message_id(event: dict[str, Any]) -> str:
    """Segment's messageId, or a digest of the event when a client sent none (so retries still deduplicate)."""
    given = event.get("messageId")
    if isinstance(given, str) and given.strip():
        return given
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def track_body(event: Any, visitor_rule: VisitorRule = "user_id_or_anonymous") -> dict[str, Any]:
    """The Pendo request body for a track event; RejectedEvent for anything else."""
    if not isinstance(event, dict):
        raise RejectedEvent("an event must be a JSON object")
    if event.get("type") != "track":
        kind = event.get("type")
        raise RejectedEvent(f"type {kind!r} is not track; only track events go to Pendo's Track Events API")
    name = event.get("event")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TEXT:
        raise RejectedEvent("event must be a non-empty string of at most 10,000 characters")
    body: dict[str, Any] = {
        "type": "track",
        "event": name,
        "visitorId": _visitor_id(event, visitor_rule),
        "timestamp": _timestamp_ms(event),
    }
    # Optional for Pendo; left out when absent, as Segment's mapping engine leaves out a missing @path.
    if isinstance(event.get("properties"), dict):
        body["properties"] = event["properties"]
    account_id = _account_id(event)
    if account_id is not None:
        body["accountId"] = account_id
    # Pendo's API requires the context object, empty or not.
    body["context"] = _context(event.get("context"))
    return body


def too_old_for_pendo(body: dict[str, Any], now_ms: float) -> bool:
    """Whether Pendo would ignore this body for its age."""
    timestamp: int = body["timestamp"]
    return timestamp < now_ms - PENDO_MAX_AGE_MS


def _as_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT:
        return value
    return None


def _visitor_id(event: dict[str, Any], rule: VisitorRule) -> str:
    # The browser script's rule: the userId, else Pendo's anonymous prefix on Segment's anonymousId.
    user_id = _as_id(event.get("userId")) if rule != "anonymous" else None
    if user_id is not None:
        return user_id
    anonymous_id = _as_id(event.get("anonymousId")) if rule != "user_id" else None
    if anonymous_id is not None:
        return ANONYMOUS_PREFIX + anonymous_id
    missing = {"user_id": "userId is not set", "anonymous": "anonymousId is not set"}.get(
        rule, "neither userId nor anonymousId is set"
    )
    raise RejectedEvent(f"{missing} ([on_load] visitor_id = {rule!r}); Pendo needs a visitor")


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _account_id(event: dict[str, Any]) -> str | None:
    return _as_id(_table(event.get("context")).get("groupId")) or _as_id(_table(event.get("properties")).get("groupId"))


def _timestamp_ms(event: dict[str, Any]) -> int:
    for field in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        value = event.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RejectedEvent(f"{field} must be an ISO 8601 string")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RejectedEvent(f"{field} {value!r} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise RejectedEvent(f"{field} {value!r} has no time zone")
        return int(parsed.timestamp() * 1000)
    return int(time.time() * 1000)


def _context(value: Any) -> dict[str, Any]:
    context = _table(value)
    page = _table(context.get("page"))
    found = {
        "ip": context.get("ip"),
        "userAgent": context.get("userAgent"),
        "url": page.get("url"),
        "title": page.get("title"),
    }
    return {key: value for key, value in found.items() if isinstance(value, str) and value}


def visitor_id(event: dict[str, Any], rule: VisitorRule) -> str:
    """The Pendo visitor id of any event by the browser's rule; RejectedEvent when the event has none."""
    return _visitor_id(event, rule)


def as_id(value: Any) -> str | None:
    """A usable Pendo id (non-empty text of at most 10,000 characters, or a number), else None."""
    return _as_id(value)


def event_time_ms(event: dict[str, Any]) -> int:
    """When the event happened, in ms since the epoch (now when it carries no time); RejectedEvent if unreadable."""
    return _timestamp_ms(event)
