"""What Pendo's Track Events API accepts but will not show: noticed at intake, counted and logged, never changed.

Pendo shows "event properties JSON too large" for an event whose properties take more than 512 bytes of JSON
(the whole object, not one value), and does not show properties whose names break its rules (letters, digits
and `_` only, at most 32 characters, not starting with a digit, not wrapped in double underscores). The relay
sends such events as they are (they are the sender's data); it counts them for /metrics and logs each event name
once per kind of problem, so an operator learns which events to fix without a line per event.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("generator.relay")
MAX_PROPERTIES_BYTES = 512
MAX_PROPERTY_NAME = 32
PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Event names remembered (so each is logged once); beyond this many, new names are counted but not logged.
MAX_REMEMBERED_NAMES = 10_000
KINDS = ("properties_too_large", "property_names_hidden")


def hidden_property_names(properties: Mapping[str, Any]) -> list[str]:
    """The property names Pendo will not show."""
    return [
        name
        for name in properties
        if len(name) > MAX_PROPERTY_NAME
        or not PROPERTY_NAME.fullmatch(name)
        or (len(name) >= 4 and name.startswith("__") and name.endswith("__"))
    ]


def properties_bytes(properties: Mapping[str, Any]) -> int:
    """The properties' size as compact UTF-8 JSON."""
    return len(json.dumps(properties, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


class PendoLimits:
    """Counts of track events Pendo will not show in full, and the event names already logged."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.counts = dict.fromkeys(KINDS, 0)
        self._logged: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self._lock = threading.Lock()  # intake converts large bodies on worker threads

    def inspect(self, body: Mapping[str, Any], text: str) -> None:
        """Look at one track event's Pendo body (as it will be sent, and its JSON text)."""
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties:
            return
        name = str(body.get("event", ""))
        # The properties are part of the body's text: a short ASCII body cannot hold too many bytes of them.
        small = len(text) <= MAX_PROPERTIES_BYTES and text.isascii()
        size = 0 if small else properties_bytes(properties)
        if size > MAX_PROPERTIES_BYTES:
            self._note(
                "properties_too_large",
                name,
                f"its properties take {size} bytes of JSON; Pendo shows more than {MAX_PROPERTIES_BYTES} as "
                '"event properties JSON too large"',
            )
        hidden = hidden_property_names(properties)
        if hidden:
            shown = ", ".join(repr(item[:40]) for item in hidden[:5])
            self._note(
                "property_names_hidden",
                name,
                f"Pendo will not show properties named {shown} (letters, digits and _ only, at most "
                f"{MAX_PROPERTY_NAME} characters, not starting with a digit or wrapped in __)",
            )

    def _note(self, kind: str, name: str, problem: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            logged = self._logged[kind]
            if name in logged or len(logged) >= MAX_REMEMBERED_NAMES:
                return
            logged.add(name)
        log.warning("track event %r: %s; it is sent as it is (logged once per event name)", name[:200], problem)
