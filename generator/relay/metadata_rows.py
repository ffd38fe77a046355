"""Identify and group calls as outbox entries, and back: one entry per call and metadata destination.

A destination of the metadata API is a record kind and a field group (`metadata/visitor/custom`, say), each with
its own queue in the outbox. An entry's id is the call's messageId and its destination, so a call sent twice is
a duplicate as a whole, and a call writing agent and custom fields is two entries delivered independently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast, get_args

from generator.metadata_config import FIELD_GROUPS, MetadataSettings
from generator.relay.convert import MAX_FUTURE_MS, PENDO_MAX_AGE_MS, RejectedEvent, VisitorRule, body_text
from generator.relay.metadata import Destination, FieldUpdate, Kind, convert
from generator.relay.outbox import NewEvent, Pending

METADATA_CALLS = ("identify", "group")
PREFIX = "metadata/"
DESTINATIONS = tuple(Destination(kind, group) for kind in get_args(Kind) for group in FIELD_GROUPS)
# The relay forgets a messageId once its event is 8 days old (see the pruner), so an older call could be a replay
# it no longer recognises, and its traits would overwrite newer ones: such calls are refused, as track events are.
TOO_OLD = (
    "the timestamp is more than 7 days old; the relay takes identify and group calls for 7 days "
    "(an older one could be a replay, and its values would overwrite newer ones)"
)
TOO_NEW = "the timestamp is more than a day in the future; check the sender's clock"


@dataclass(frozen=True)
class MetadataRows:
    """The outbox entries of one call, and the values left out of them (with why)."""

    events: list[NewEvent]
    dropped: tuple[str, ...]


def destination_name(destination: Destination) -> str:
    """The outbox queue (and /healthz name) of a metadata destination."""
    return f"{PREFIX}{destination.kind}/{destination.group}"


def destination_of(name: str) -> Destination | None:
    """The metadata destination an outbox queue name stands for, if it is one."""
    return next((item for item in DESTINATIONS if destination_name(item) == name), None)


def entry_id(message_id: str, destination: Destination) -> str:
    """The outbox id of a call's values for one destination."""
    return f"{message_id}#{destination.kind}/{destination.group}"


def metadata_rows(
    event: dict[str, Any], settings: MetadataSettings, visitor_rule: VisitorRule, now_ms: float
) -> MetadataRows:
    """The entries to store for an identify or group call; RejectedEvent (with the reason) when it cannot go."""
    conversion = convert(event, settings, visitor_rule)
    for update in conversion.updates:
        check_age(update.timestamp_ms, now_ms)
    events = [
        NewEvent(
            entry_id(conversion.message_id, update.destination),
            destination_name(update.destination),
            _encoded(update),
            update.timestamp_ms,
            order_key=update.record_id,
        )
        for update in conversion.updates
    ]
    return MetadataRows(events, conversion.dropped)


def check_age(timestamp_ms: int, now_ms: float) -> None:
    """RejectedEvent for a call too old to be told from a replay, or from a sender whose clock is wrong."""
    if timestamp_ms < now_ms - PENDO_MAX_AGE_MS:
        raise RejectedEvent(TOO_OLD)
    if timestamp_ms > now_ms + MAX_FUTURE_MS:
        raise RejectedEvent(TOO_NEW)


def _encoded(update: FieldUpdate) -> str:
    return body_text({"recordId": update.record_id, "values": dict(update.values), "timestamp": update.timestamp_ms})


def stored_update(item: Pending) -> FieldUpdate:
    """The update a claimed entry holds; ValueError (with the reason) when the stored entry is unusable."""
    destination = destination_of(item.destination)
    if destination is None:
        raise ValueError(f"{item.destination!r} is not a metadata destination")
    try:
        document = json.loads(item.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"the stored entry is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("the stored entry is not a JSON object")
    record_id, values, timestamp = document.get("recordId"), document.get("values"), document.get("timestamp")
    if not isinstance(record_id, str) or not isinstance(values, dict) or not values or not isinstance(timestamp, int):
        raise ValueError("the stored entry lacks recordId, values or timestamp")
    try:
        body_text(values).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as error:
        raise ValueError(f"the stored values cannot be sent as JSON: {error}"[:300]) from None
    values = cast(dict[str, Any], values)
    return FieldUpdate(destination, record_id, values, timestamp, item.message_id, item.sequence)
