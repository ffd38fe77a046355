"""Decode what the Pendo agent sends: `jzb` is JSON, zlib-deflated, then base64url-encoded."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

# What the agent expects back from its .gif endpoints; any other answer makes it resend.
TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def decode_jzb(value: str) -> Any:
    """The JSON carried by one jzb value."""
    padded = value + "=" * (-len(value) % 4)
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(padded)))


def jzb_payloads(url: str, body: str | None) -> list[Any]:
    """Every jzb payload in a request's query string and form or JSON body."""
    found = [decode_jzb(value) for value in parse_qs(urlsplit(url).query).get("jzb", [])]
    if body:
        stripped = body.strip()
        if stripped.startswith("{"):
            document = json.loads(stripped)
            if isinstance(document, dict) and isinstance(document.get("jzb"), str):
                found.append(decode_jzb(document["jzb"]))
        else:
            found.extend(decode_jzb(value) for value in parse_qs(stripped).get("jzb", []))
    return found
