"""Segment Engage audience membership → Pendo Segments: recognising Engage's calls, planning PATCHes, reading answers.

Pure: no I/O, no clock. Engage says a visitor entered or left an audience in two shapes, both with
`context.personas.computation_class = "audience"` and the audience key in `computation_key`:

* an identify call whose `traits[<key>]` is true or false;
* a track call "Audience Entered" or "Audience Exited" whose `properties[<key>]` is true or false.

The outbox keeps one desired membership per audience and visitor (the last one accepted), so what is planned here
never holds a visitor twice: a visitor who left and came back before a send is simply inside. Pendo's
`PATCH /api/v1/segment/{id}/visitor` takes `{"patch": [{"op": "add"|"remove", "path": "/visitors", "value": [ids]}]}`
and answers `{"multistatus": [{"status", "message", "operation"}]}`, one item per operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from generator.audiences_config import AudienceSettings, is_audience_key
from generator.relay.convert import (
    MAX_FUTURE_MS,
    PENDO_MAX_AGE_MS,
    RejectedEvent,
    body_text,
    event_time_ms,
    message_id,
    visitor_id,
)

AUDIENCE_EVENTS = {"Audience Entered": True, "Audience Exited": False}
# The outbox queue audience events are stored under (they then become memberships; see the outbox).
AUDIENCES = "audiences"
SEGMENT_PATH = "/visitors"
# Pendo wants at least one visitor in a new segment (Segment's destination uses "empty-visitor" the same way).
PLACEHOLDER_VISITOR = "segment-pendo-placeholder"
# Pendo answers 409 while another write to the same segment is under way.
BUSY = 409
Verdict = Literal["done", "retry", "dead"]


@dataclass(frozen=True)
class Membership:
    """One Engage call: a visitor is (or is no longer) in an audience."""

    audience: str
    visitor: str
    member: bool
    timestamp_ms: int
    message_id: str

    def body(self) -> str:
        """The outbox body of this call."""
        return body_text({"audience": self.audience, "visitor": self.visitor, "member": self.member})


def audience_key(event: Any) -> str | None:
    """The audience key of an Engage audience call; None for any other call (it goes its usual way)."""
    if not isinstance(event, dict):
        return None
    context = event.get("context")
    personas = context.get("personas") if isinstance(context, dict) else None
    if not isinstance(personas, dict) or personas.get("computation_class") != "audience":
        return None
    key = personas.get("computation_key")
    if not isinstance(key, str) or not key.strip():
        raise RejectedEvent(
            "context.personas.computation_class is audience but computation_key (the audience key) is missing"
        )
    if not is_audience_key(key):
        raise RejectedEvent(f"context.personas.computation_key {key[:60]!r} is not an Engage audience key")
    return key


def membership(event: dict[str, Any], key: str, settings: AudienceSettings) -> Membership:
    """The membership an Engage audience call states; RejectedEvent (with the reason) when it states none."""
    kind = event.get("type")
    if kind == "identify":
        where = "traits"
    elif kind == "track":
        name = event.get("event")
        if name not in AUDIENCE_EVENTS:
            raise RejectedEvent(
                f"an audience track call must be Audience Entered or Audience Exited, not {str(name)[:100]!r}"
            )
        where = "properties"
    else:
        raise RejectedEvent(f"an audience call must be identify or track, not {kind!r}")
    table = event.get(where)
    value = table.get(key) if isinstance(table, dict) else None
    if not isinstance(value, bool):
        found = "is missing" if value is None else f"is {json.dumps(value)[:60]}"
        raise RejectedEvent(
            f"{where}.{key[:100]} {found}; Engage sends true (entered) or false (exited) there, "
            "and the relay will not guess a membership"
        )
    try:
        visitor = visitor_id(event, settings.visitor_id)
    except RejectedEvent as error:
        raise RejectedEvent(str(error).replace("[on_load] visitor_id", "[audiences] visitor_id")) from None
    if "\x00" in visitor or "\x00" in key:
        raise RejectedEvent("the visitor id or audience key holds a NUL character, which Pendo cannot take")
    return Membership(key, visitor, value, event_time_ms(event), message_id(event))


def check_membership_age(timestamp_ms: int, now_ms: float) -> None:
    """RejectedEvent for a call too old to be told from a replay, or from a sender whose clock is wrong.

    The relay forgets a messageId once its call is 8 days old, so an older call could be a replay, and its
    membership would overwrite a newer one.
    """
    if timestamp_ms < now_ms - PENDO_MAX_AGE_MS:
        raise RejectedEvent(
            "the timestamp is more than 7 days old; the relay takes audience calls for 7 days "
            "(an older one could be a replay, and its membership would overwrite a newer one)"
        )
    if timestamp_ms > now_ms + MAX_FUTURE_MS:
        raise RejectedEvent("the timestamp is more than a day in the future; check the sender's clock")


def stored_membership(body: str) -> tuple[str, str, bool]:
    """(audience, visitor, member) from an outbox body; ValueError when it is not one."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    audience, visitor, member = document.get("audience"), document.get("visitor"), document.get("member")
    if not isinstance(audience, str) or not isinstance(visitor, str) or not isinstance(member, bool):
        raise ValueError("lacks audience, visitor or member")
    return audience, visitor, member


# Planning requests ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A claimed membership to write: the visitor, in or out, and the version of it that was claimed."""

    visitor: str
    member: bool
    version: int


@dataclass(frozen=True)
class Operation:
    """One operation of a PATCH: add or remove these visitors."""

    op: Literal["add", "remove"]
    changes: tuple[Change, ...]

    def document(self) -> dict[str, Any]:
        """The operation as Pendo takes it."""
        return {"op": self.op, "path": SEGMENT_PATH, "value": [change.visitor for change in self.changes]}


@dataclass(frozen=True)
class Patch:
    """One PATCH request body: its operations, at most max_visitors visitors in all."""

    operations: tuple[Operation, ...]

    def content(self) -> bytes:
        """The request body."""
        return body_text({"patch": [operation.document() for operation in self.operations]}).encode("utf-8")

    @property
    def changes(self) -> list[Change]:
        """Every change the request carries."""
        return [change for operation in self.operations for change in operation.changes]


def plan_patches(changes: Iterable[Change], max_visitors: int) -> list[Patch]:
    """PATCH bodies for the changes: each visitor once (its newest version), at most max_visitors per body.

    A visitor is either added or removed, never both, so the order Pendo applies a body's operations in cannot
    leave anyone on the wrong side.
    """
    newest: dict[str, Change] = {}
    for change in changes:
        if change.visitor not in newest or change.version >= newest[change.visitor].version:
            newest[change.visitor] = change
    ordered = list(newest.values())
    patches: list[Patch] = []
    for start in range(0, len(ordered), max_visitors):
        chunk = ordered[start : start + max_visitors]
        operations = [
            Operation(op, tuple(change for change in chunk if change.member is (op == "add")))
            for op in ("add", "remove")
        ]
        patches.append(Patch(tuple(operation for operation in operations if operation.changes)))
    return patches


def create_body(name: str) -> bytes:
    """The body of `POST /api/v1/segment/upload` for a new segment."""
    return body_text({"name": name, "visitors": [PLACEHOLDER_VISITOR]}).encode("utf-8")


def created_segment_id(text: str) -> str | None:
    """The segmentId in Pendo's answer to a create, if it holds one."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    found = document.get("segmentId") if isinstance(document, dict) else None
    if isinstance(found, int | str) and not isinstance(found, bool) and str(found).strip():
        return str(found)
    return None


# Reading answers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationResult:
    """What became of one operation: done, retried, or refused for good, and why."""

    operation: Operation
    verdict: Verdict
    status: int
    reason: str = ""


@dataclass(frozen=True)
class PatchAnswer:
    """Pendo's answer to a PATCH, per operation."""

    results: tuple[OperationResult, ...] = field(default_factory=tuple)


def retried_status(status: int) -> bool:
    """Whether a status means "try again later" rather than "this is refused"."""
    return status in (408, 425, BUSY, 429) or status >= 500


def read_patch_answer(status: int, text: str, patch: Patch) -> PatchAnswer:
    """Each operation's verdict from a PATCH's status and body (a 2xx with a multistatus is read item by item)."""
    operations = patch.operations
    if status >= 300:
        verdict: Verdict = "retry" if retried_status(status) else "dead"
        reason = f"HTTP {status}: {' '.join(text.split())[:300]}".rstrip(": ")
        return PatchAnswer(tuple(OperationResult(operation, verdict, status, reason) for operation in operations))
    items = _multistatus(text)
    if items is None:
        # A success without the per-operation list: Pendo took the request as a whole.
        return PatchAnswer(tuple(OperationResult(operation, "done", status) for operation in operations))
    results = []
    for index, operation in enumerate(operations):
        item = _item_for(items, index, operation)
        if item is None:
            results.append(OperationResult(operation, "retry", status, "Pendo's answer did not mention it"))
            continue
        item_status = item.get("status")
        code = item_status if isinstance(item_status, int) and not isinstance(item_status, bool) else 0
        message = str(item.get("message") or "")[:300]
        if 200 <= code < 300:
            results.append(OperationResult(operation, "done", code))
        else:
            verdict = "retry" if code == 0 or retried_status(code) else "dead"
            results.append(OperationResult(operation, verdict, code, f"{operation.op}: {code} {message}".strip()))
    return PatchAnswer(tuple(results))


def _multistatus(text: str) -> list[dict[str, Any]] | None:
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    items = document.get("multistatus") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return None
    return [item for item in items if isinstance(item, dict)]


def _item_for(items: Sequence[dict[str, Any]], index: int, operation: Operation) -> dict[str, Any] | None:
    """The multistatus item of an operation: the one naming its op, else the one in its place."""
    named = [item for item in items if _op_named(item.get("operation")) == operation.op]
    if len(named) == 1:
        return named[0]
    return items[index] if index < len(items) else None


def _op_named(operation: Any) -> str | None:
    if isinstance(operation, dict):
        op = operation.get("op")
        return op if isinstance(op, str) else None
    return operation if isinstance(operation, str) else None
