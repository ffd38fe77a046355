"""The Pendo actions a subscription can trigger, their fields, and Segment's preset mappings.

Field names and defaults follow Segment's Pendo Web (Actions) destination, so an imported
destination and a hand-written config read the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ActionName = Literal["identify", "group", "track", "page"]
FieldKind = Literal["string", "object"]


@dataclass(frozen=True)
class FieldSpec:
    """One Pendo field an action fills from the event."""

    name: str
    kind: FieldKind
    default: Any
    description: str


@dataclass(frozen=True)
class ActionSpec:
    """What one action sends to Pendo, and the subscription Segment's preset uses for it."""

    name: ActionName
    preset_name: str
    default_subscribe: str
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec | None:
        """The field called name, if this action has one."""
        return next((spec for spec in self.fields if spec.name == name), None)


def _path(path: str) -> dict[str, str]:
    return {"@path": path}


_CONTEXT_GROUP_ELSE_GROUP = {
    "@if": {"exists": _path("$.context.groupId"), "then": _path("$.context.groupId"), "else": _path("$.groupId")}
}

ACTIONS: dict[str, ActionSpec] = {
    "identify": ActionSpec(
        "identify",
        "Send Identify Event",
        'type = "identify"',
        (
            FieldSpec("visitorId", "string", _path("$.userId"), "Pendo visitor id; empty means the current visitor"),
            FieldSpec("visitorData", "object", _path("$.traits"), "visitor metadata"),
            FieldSpec("accountId", "string", _CONTEXT_GROUP_ELSE_GROUP, "account id; empty means the remembered group"),
        ),
    ),
    "group": ActionSpec(
        "group",
        "Send Group Event",
        'type = "group"',
        (
            FieldSpec("visitorId", "string", _path("$.userId"), "Pendo visitor id; empty means the current visitor"),
            FieldSpec("accountId", "string", _path("$.groupId"), "Pendo account id; nothing is sent without one"),
            FieldSpec("accountData", "object", _path("$.traits"), "account metadata"),
            FieldSpec("parentAccountData", "object", _path("$.traits.parentAccount"), "parent account, with an id"),
        ),
    ),
    "track": ActionSpec(
        "track",
        "Send Track Event",
        'type = "track"',
        (
            FieldSpec("event", "string", _path("$.event"), "the Pendo track event name"),
            FieldSpec("metadata", "object", _path("$.properties"), "the track event's properties"),
        ),
    ),
    "page": ActionSpec(
        "page",
        "Send Page Load",
        'type = "page"',
        (
            FieldSpec(
                "url",
                "string",
                {
                    "@if": {
                        "exists": _path("$.properties.url"),
                        "then": _path("$.properties.url"),
                        "else": _path("$.context.page.url"),
                    }
                },
                "the URL passed to pendo.pageLoad",
            ),
        ),
    ),
}

PRESET_ACTIONS: tuple[ActionName, ...] = ("track", "identify", "group")
