"""What Pendo and Segment got, as a test reads it: visitors, accounts, track events, raw calls.

Pure data: built from recorded requests, never from the browser, so it is unit-testable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

IDENTITY_METHODS = ("initialize", "identify", "updateOptions")


@dataclass(frozen=True)
class Identity:
    """A visitor or an account: its id (None while anonymous or unknown) and its metadata."""

    id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The id and metadata as one mapping, the way Pendo's pages show a record."""
        return {"id": self.id, **self.metadata}


@dataclass(frozen=True)
class TrackEvent:
    """One track event Pendo got."""

    name: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One call the page made on window.pendo."""

    method: str
    args: list[Any]


def calls_from(records: Iterable[Mapping[str, Any]]) -> list[Call]:
    """The recorder's posts, in the order the page made the calls."""
    ordered = sorted(records, key=lambda record: record.get("seq", 0))
    return [Call(str(record.get("method")), list(record.get("args") or [])) for record in ordered]


def identities_from_calls(calls: Iterable[Call]) -> tuple[Identity, Identity]:
    """Visitor and account as the calls left them (what the stand-in agent would send Pendo)."""
    current: dict[str, Identity] = {"visitor": Identity(None), "account": Identity(None)}
    for call in calls:
        if call.method == "clearSession":
            current = {"visitor": Identity(None), "account": Identity(None)}
            continue
        if call.method not in IDENTITY_METHODS or not call.args:
            continue
        options = call.args[0]
        if call.method == "identify" and not isinstance(options, dict):
            account = call.args[1] if len(call.args) > 1 else None
            options = {"visitor": {"id": options}, **({"account": {"id": account}} if account is not None else {})}
        if not isinstance(options, dict):
            continue
        for kind in ("visitor", "account"):
            given = options.get(kind)
            if isinstance(given, dict):
                current[kind] = _merged(current[kind], given)
    return current["visitor"], current["account"]


def tracks_from_calls(calls: Iterable[Call]) -> list[TrackEvent]:
    """Track events the calls asked the agent to send."""
    events = []
    for call in calls:
        if call.method == "track" and call.args and isinstance(call.args[0], str):
            properties = call.args[1] if len(call.args) > 1 and isinstance(call.args[1], dict) else {}
            events.append(TrackEvent(call.args[0], properties))
    return events


def agent_events(payloads: Iterable[Any]) -> list[dict[str, Any]]:
    """The events in the agent's decoded beacons, once each (the agent may send a batch again)."""
    seen: set[str] = set()
    events: list[dict[str, Any]] = []
    for payload in payloads:
        for event in payload if isinstance(payload, list) else [payload]:
            if not isinstance(event, dict):
                continue
            fingerprint = json.dumps(event, sort_keys=True, default=str)
            if fingerprint not in seen:
                seen.add(fingerprint)
                events.append(event)
    return events


def identities_from_events(events: Iterable[Mapping[str, Any]]) -> tuple[Identity, Identity]:
    """Visitor and account as the real agent last sent them: the latest ids, with their metadata events merged."""
    visitor_id: str | None = None
    account_id: str | None = None
    metadata: dict[str, dict[str, dict[str, Any]]] = {"visitor": {}, "account": {}}
    for event in events:
        visitor_id = _text(event.get("visitor_id")) or visitor_id
        account_id = _text(event.get("account_id")) or account_id
        if event.get("type") != "meta" or not isinstance(event.get("props"), dict):
            continue
        for kind, owner in (("visitor", visitor_id), ("account", account_id)):
            given = event["props"].get(kind)
            if isinstance(given, dict) and owner is not None:
                record = metadata[kind].setdefault(_text(given.get("id")) or owner, {})
                record.update({key: value for key, value in given.items() if key != "id"})
    return (
        Identity(visitor_id, metadata["visitor"].get(visitor_id or "", {})),
        Identity(account_id, metadata["account"].get(account_id or "", {})),
    )


def tracks_from_events(events: Iterable[Mapping[str, Any]]) -> list[TrackEvent]:
    """Track events the real agent sent."""
    return [
        TrackEvent(str(event.get("track_event_name")), dict(event.get("props") or {}))
        for event in events
        if event.get("type") == "track"
    ]


def segment_events(bodies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every event analytics.js sent to Segment's API, batches unpacked, in the order sent."""
    events: list[dict[str, Any]] = []
    for body in bodies:
        batch = body.get("batch")
        if isinstance(batch, list):
            events.extend(item for item in batch if isinstance(item, dict))
        else:
            events.append(dict(body))
    return events


def _merged(identity: Identity, given: Mapping[str, Any]) -> Identity:
    new_id = _text(given.get("id"))
    metadata = {key: value for key, value in given.items() if key != "id"}
    if new_id is not None and new_id != identity.id:
        return Identity(new_id, metadata)
    return Identity(identity.id, {**identity.metadata, **metadata})


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
