"""Segment identify and group → Pendo's metadata API: rows, coalescing, bounded bulk requests, Pendo's answers.

Pure: no I/O, no clock. The relay stores what `convert` returns, lets a `Coalescer` (or the outbox) hold updates
for the window, sends each `RequestBody` built by `build_request`, and acts on `classify`'s verdict.

Pendo's API (`POST /api/v1/metadata/{kind}/{group}/value`, header `x-pendo-integration-key`) takes a JSON list of
`{"visitorId" | "accountId": id, "values": {field: value}}` and answers 200 with `total`, `updated`, `failed` and
the ids it did not find (`missing`; with `?create=true` those are created instead). Writes are upserts. A visitor's
account link is not a metadata field (Pendo derives it from events carrying both ids), so none is written here;
`Conversion.account_id` hands the identify's account to the caller.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from generator.actions import ACTIONS
from generator.mapping import MISSING, evaluate_mapping
from generator.metadata_config import FieldGroup, FieldTables, MetadataSettings
from generator.regions import APP_HOSTS
from generator.relay.convert import MAX_TEXT, RejectedEvent, VisitorRule, as_id, event_time_ms, message_id, visitor_id

Kind = Literal["visitor", "account", "parentAccount"]
# Pendo's public reference documents the visitor and account kinds. Parent accounts (a feature Pendo switches on
# per subscription) follow the agent's naming; confirm with Pendo before relying on them.
ID_KEYS: dict[str, str] = {"visitor": "visitorId", "account": "accountId", "parentAccount": "parentAccountId"}
MAX_LIST_ITEMS = 500
# JavaScript (and so Pendo's JSON) holds integers exactly up to 2**53.
MAX_SAFE_INTEGER = 2**53 - 1
INTEGRATION_KEY_HEADER = "x-pendo-integration-key"
# The identify preset's account: context.groupId, else groupId (as Segment's Pendo Web (Actions) reads it).
IDENTIFY_ACCOUNT = next(spec.default for spec in ACTIONS["identify"].fields if spec.name == "accountId")


@dataclass(frozen=True, order=True)
class Destination:
    """One endpoint of the metadata API: a kind of record and a field group."""

    kind: Kind
    group: FieldGroup

    @property
    def id_key(self) -> str:
        """The row's id key in the request body."""
        return ID_KEYS[self.kind]


@dataclass(frozen=True)
class FieldUpdate:
    """The values one event sets on one record in one field group."""

    destination: Destination
    record_id: str
    values: Mapping[str, Any]
    timestamp_ms: int
    message_id: str
    # The order in which the outbox accepted it (0 when it has not been through an outbox).
    sequence: int = 0


@dataclass(frozen=True)
class Conversion:
    """What one identify or group call writes, the identify's account id, and the fields left out (with why)."""

    message_id: str
    updates: tuple[FieldUpdate, ...]
    account_id: str | None = None
    dropped: tuple[str, ...] = ()


# Converting events -------------------------------------------------------------------------------------------


def convert(event: Any, settings: MetadataSettings, visitor_rule: VisitorRule = "user_id_or_anonymous") -> Conversion:
    """The metadata updates of an identify or group call; RejectedEvent for anything else or a call without ids."""
    if not isinstance(event, dict):
        raise RejectedEvent("an event must be a JSON object")
    kind = event.get("type")
    if kind not in ("identify", "group"):
        raise RejectedEvent(f"type {kind!r} is neither identify nor group; only those go to Pendo's metadata API")
    timestamp = event_time_ms(event)
    ident = message_id(event)
    builder = _Builder(settings, timestamp, ident)
    if kind == "identify":
        visitor = visitor_id(event, visitor_rule)
        builder.add("visitor", visitor, settings.visitor, event)
        account = as_id(_evaluated(IDENTIFY_ACCOUNT, event))
        return Conversion(ident, tuple(builder.updates), account, tuple(builder.dropped))
    account = as_id(event.get("groupId"))
    if account is None:
        raise RejectedEvent("groupId is not set; Pendo needs an account id for a group call")
    parent = settings.parent_account
    parent_id = as_id(_evaluated(parent.id, event)) if parent is not None else None
    if parent is not None and parent_id is not None:
        builder.add("parentAccount", parent_id, parent, event)
        # Pendo's agent names an account under a parent "<parent id>::<account id>"; the same record here.
        account = f"{parent_id}::{account}"
    builder.add("account", account, settings.account, event)
    return Conversion(ident, tuple(builder.updates), None, tuple(builder.dropped))


def _evaluated(mapping: Any, event: dict[str, Any]) -> Any:
    value = evaluate_mapping(mapping, event)
    return None if value is MISSING else value


@dataclass
class _Builder:
    settings: MetadataSettings
    timestamp_ms: int
    message_id: str
    updates: list[FieldUpdate] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def add(self, kind: Kind, record_id: str, tables: FieldTables, event: dict[str, Any]) -> None:
        for group, fields in tables.by_group().items():
            destination = Destination(kind, group)
            values: dict[str, Any] = {}
            for name, mapping in fields.items():
                value = evaluate_mapping(mapping, event)
                # Absent and null traits leave the field in Pendo as it is.
                if value is MISSING or value is None:
                    continue
                problem = value_problem(value)
                if problem is None and _row_bytes(destination, record_id, {name: value}) > self.settings.max_bytes - 2:
                    problem = f"its row is over max_bytes ({self.settings.max_bytes})"
                if problem is not None:
                    self.dropped.append(f"{kind}.{group}.{name}: {problem}")
                    continue
                values[name] = value
            if values:
                self.updates.append(FieldUpdate(destination, record_id, values, self.timestamp_ms, self.message_id))


def value_problem(value: Any) -> str | None:
    """Why Pendo cannot store this value in a field (None when it can): text, numbers, booleans and lists of them."""
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            return f"a list of {len(value)} items (at most {MAX_LIST_ITEMS})"
        for item in value:
            if isinstance(item, list | dict):
                return "a list holding lists or objects; Pendo fields take flat values"
            problem = value_problem(item) if item is not None else None
            if problem is not None:
                return f"a list item is {problem}"
        return None
    if isinstance(value, dict):
        return "an object; Pendo fields take text, numbers, booleans or lists of them (map a leaf, e.g. $.traits.a.b)"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else "an integer beyond 2**53, which JSON readers round"
    if isinstance(value, float):
        return None if math.isfinite(value) else "not a finite number"
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT else f"text over {MAX_TEXT:,} characters"
    return f"a {type(value).__name__}, which JSON cannot carry"


# Coalescing and bounded bodies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One record's merged values for one destination, and the events they came from."""

    destination: Destination
    record_id: str
    values: Mapping[str, Any]
    message_ids: frozenset[str]

    def as_json(self) -> dict[str, Any]:
        """The row as Pendo's API takes it."""
        return {self.destination.id_key: self.record_id, "values": dict(self.values)}


@dataclass(frozen=True)
class RequestBody:
    """One bulk request's rows (one destination), and the events whose values it carries."""

    destination: Destination
    rows: tuple[Row, ...]

    @property
    def message_ids(self) -> frozenset[str]:
        """Every event with a value in this body (an event split over several bodies is done when all of them are)."""
        return frozenset().union(*(row.message_ids for row in self.rows))

    def halves(self) -> tuple[RequestBody, RequestBody]:
        """The body in two (each with at least one row), to find the row Pendo refuses."""
        middle = max(1, len(self.rows) // 2)
        return RequestBody(self.destination, self.rows[:middle]), RequestBody(self.destination, self.rows[middle:])

    @property
    def record_ids(self) -> tuple[str, ...]:
        """The visitors or accounts written, in order."""
        return tuple(row.record_id for row in self.rows)

    def encoded(self) -> bytes:
        """The JSON body."""
        return _encode([row.as_json() for row in self.rows])

    def without_fields(self, names: Iterable[str]) -> RequestBody | None:
        """The same body minus some fields (e.g. ones Pendo refused); None when nothing is left."""
        left_out = set(names)
        rows = []
        for row in self.rows:
            values = {name: value for name, value in row.values.items() if name not in left_out}
            if values:
                rows.append(replace(row, values=values))
        return RequestBody(self.destination, tuple(rows)) if rows else None


def coalesce(updates: Iterable[FieldUpdate], *, in_given_order: bool = False) -> list[Row]:
    """One row per destination and record: the last value per field wins, in timestamp order (then arrival order).

    With in_given_order, in the order given instead (the relay's order of acceptance by its outbox).
    """
    pairs = list(enumerate(updates))
    ordered = pairs if in_given_order else sorted(pairs, key=lambda pair: (pair[1].timestamp_ms, pair[0]))
    merged: dict[tuple[Destination, str], tuple[dict[str, Any], set[str], int]] = {}
    for arrival, update in ordered:
        key = (update.destination, update.record_id)
        values, sources, first = merged.setdefault(key, ({}, set(), arrival))
        values.update(update.values)
        sources.add(update.message_id)
        merged[key] = (values, sources, min(first, arrival))
    by_arrival = sorted(merged.items(), key=lambda item: item[1][2])
    return [
        Row(destination, record_id, values, frozenset(sources))
        for (destination, record_id), (values, sources, _) in by_arrival
    ]


def request_bodies(rows: Iterable[Row], *, max_rows: int, max_bytes: int) -> list[RequestBody]:
    """The rows packed into bodies of at most max_rows rows and max_bytes bytes of JSON, one destination each.

    A row too large for one body is split by field over several rows for the same record (every single field
    fits: `convert` drops any that would not).
    """
    by_destination: dict[Destination, list[Row]] = {}
    for row in rows:
        by_destination.setdefault(row.destination, []).extend(_split_row(row, max_bytes))
    bodies: list[RequestBody] = []
    for destination, destination_rows in by_destination.items():
        current: list[Row] = []
        size = 2  # the list's brackets
        for row in destination_rows:
            row_size = _row_bytes(row.destination, row.record_id, row.values)
            added = row_size + (1 if current else 0)
            if current and (len(current) >= max_rows or size + added > max_bytes):
                bodies.append(RequestBody(destination, tuple(current)))
                current, size, added = [], 2, row_size
            current.append(row)
            size += added
        if current:
            bodies.append(RequestBody(destination, tuple(current)))
    return bodies


def _split_row(row: Row, max_bytes: int) -> list[Row]:
    if _row_bytes(row.destination, row.record_id, row.values) + 2 <= max_bytes:
        return [row]
    parts: list[Row] = []
    current: dict[str, Any] = {}
    for name, value in row.values.items():
        candidate = {**current, name: value}
        if current and _row_bytes(row.destination, row.record_id, candidate) + 2 > max_bytes:
            parts.append(replace(row, values=current))
            candidate = {name: value}
        current = candidate
    parts.append(replace(row, values=current))
    return parts


def _encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _row_bytes(destination: Destination, record_id: str, values: Mapping[str, Any]) -> int:
    return len(_encode({destination.id_key: record_id, "values": dict(values)}))


class Coalescer:
    """Holds updates for a window per record, then hands out merged, bounded request bodies.

    A record's window starts with its first waiting update; the relay's clock is passed in (ms).
    """

    def __init__(self, *, window_ms: float, max_rows: int, max_bytes: int) -> None:
        """Merge within window_ms; bodies of at most max_rows rows and max_bytes bytes."""
        self.window_ms = window_ms
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._waiting: dict[tuple[Destination, str], list[FieldUpdate]] = {}
        self._since: dict[tuple[Destination, str], float] = {}

    @classmethod
    def for_settings(cls, settings: MetadataSettings) -> Coalescer:
        """A coalescer with the config's window and limits."""
        return cls(window_ms=settings.window_seconds * 1000, max_rows=settings.max_rows, max_bytes=settings.max_bytes)

    def __len__(self) -> int:
        """How many updates wait."""
        return sum(len(updates) for updates in self._waiting.values())

    def add(self, update: FieldUpdate, now_ms: float) -> None:
        """Hold an update until its record's window ends."""
        key = (update.destination, update.record_id)
        self._waiting.setdefault(key, []).append(update)
        self._since.setdefault(key, now_ms)

    def due(self, now_ms: float) -> list[RequestBody]:
        """The bodies for records whose window has ended; they stop waiting."""
        ready = [key for key, since in self._since.items() if now_ms - since >= self.window_ms]
        return self._take(ready)

    def drain(self) -> list[RequestBody]:
        """Everything that waits, window or not (e.g. at shutdown)."""
        return self._take(list(self._waiting))

    def _take(self, keys: Sequence[tuple[Destination, str]]) -> list[RequestBody]:
        updates = [update for key in keys for update in self._waiting.pop(key)]
        for key in keys:
            del self._since[key]
        return request_bodies(coalesce(updates), max_rows=self.max_rows, max_bytes=self.max_bytes)


# Requests and answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataRequest:
    """One HTTP request to Pendo's metadata API."""

    url: str
    headers: Mapping[str, str]
    content: bytes
    method: str = "POST"


def app_base_url(region: str) -> str:
    """The region's app host, which serves the metadata API."""
    return f"https://{APP_HOSTS[region]}"


def metadata_url(base_url: str, destination: Destination, *, create: bool) -> str:
    """`{base}/api/v1/metadata/{kind}/{group}/value`, with `?create=true` to create unknown records."""
    url = f"{base_url.rstrip('/')}/api/v1/metadata/{destination.kind}/{destination.group}/value"
    return url + "?create=true" if create else url


def build_request(body: RequestBody, *, base_url: str, integration_key: str, create: bool) -> MetadataRequest:
    """The request that writes one body."""
    return MetadataRequest(
        url=metadata_url(base_url, body.destination, create=create),
        headers={INTEGRATION_KEY_HEADER: integration_key, "content-type": "application/json"},
        content=body.encoded(),
    )


Verdict = Literal["delivered", "partly_failed", "retry", "misconfigured", "unknown_fields", "split", "dead_letter"]
# Answers about the relay's setup, not the data: retried while /healthz names the problem.
SETUP_PROBLEMS = {
    401: "Pendo refused the Integration Key: check it, and that it has write access",
    403: "Pendo refused the Integration Key: check it, and that it has write access",
    404: "Pendo has no metadata API at this URL: check the config's region",
}
RETRIED_STATUSES = {408, 425, 429}
_REFUSAL = re.compile(r"unknown|not found|no such|does not exist|doesn't exist|not defined|invalid field", re.I)


@dataclass(frozen=True)
class Answer:
    """What to do with a body after Pendo answered.

    delivered: done. partly_failed: done except `failed_ids` (records Pendo did not find; dead-letter those).
    retry: send again later (after `retry_after_seconds` when Pendo said). misconfigured: retry, and show `reason`
    in /healthz. unknown_fields: Pendo refused `unknown_fields` (custom fields missing from Data mappings):
    dead-letter those values and send `RequestBody.without_fields(...)`. split: Pendo refused a body of several
    rows (or found it too large) without naming a field: send its `halves()`, so one bad row cannot take the others
    down with it. dead_letter: Pendo refused a body of one row; `reason` is Pendo's.
    """

    verdict: Verdict
    reason: str = ""
    retry_after_seconds: float | None = None
    failed_ids: tuple[str, ...] = ()
    unknown_fields: tuple[str, ...] = ()


def classify(status: int, text: str, body: RequestBody, retry_after: str | None = None) -> Answer:
    """Pendo's answer to one body, as a verdict."""
    if 200 <= status < 300:
        return _accepted(text, body)
    if status in RETRIED_STATUSES or status >= 500:
        return Answer("retry", f"HTTP {status}", _seconds(retry_after))
    if status in SETUP_PROBLEMS:
        return Answer("misconfigured", f"HTTP {status}: {SETUP_PROBLEMS[status]}")
    reason = f"HTTP {status}: {text.strip()[:500]}"
    refused = refused_fields(text, body)
    if refused:
        return Answer("unknown_fields", reason, unknown_fields=refused)
    if len(body.rows) > 1:
        return Answer("split", reason)
    return Answer("dead_letter", reason)


def refused_fields(text: str, body: RequestBody) -> tuple[str, ...]:
    """The body's fields that Pendo's refusal names as unknown (its wording is not documented, so any names)."""
    if not _REFUSAL.search(text):
        return ()
    names = sorted({name for row in body.rows for name in row.values})
    return tuple(name for name in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text))


def _accepted(text: str, body: RequestBody) -> Answer:
    try:
        summary = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    if not isinstance(summary, dict):
        return Answer("delivered")
    failed = summary.get("failed")
    if not isinstance(failed, int) or isinstance(failed, bool) or failed <= 0:
        return Answer("delivered")
    missing = summary.get("missing")
    written = set(body.record_ids)
    failed_ids = tuple(str(item) for item in missing if str(item) in written) if isinstance(missing, list) else ()
    reason = f"Pendo did not update {failed} of {len(body.rows)}"
    if failed_ids:
        reason += f"; not found: {', '.join(failed_ids[:20])} (set [metadata] create = true to create them)"
    return Answer("partly_failed", reason, failed_ids=failed_ids)


def _seconds(retry_after: str | None) -> float | None:
    if retry_after is None:
        return None
    try:
        seconds = float(retry_after)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
