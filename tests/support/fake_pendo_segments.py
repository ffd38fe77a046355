"""A local stand-in for Pendo's segment API: a real HTTP server on loopback that keeps each segment's visitors.

* `POST /api/v1/segment/upload` `{"name", "visitors": [...]}` (at least one visitor) → `{"segmentId": ...}`;
* `GET /api/v1/segment/{id}` → `{"id", "name", "visitorCount"}`;
* `PATCH /api/v1/segment/{id}/visitor` `{"patch": [{"op": "add"|"remove", "path": "/visitors", "value": [...]}]}`
  (at most 1,000 visitors in all) → 200 `{"multistatus": [{"status", "message", "operation"}]}`, the operations
  applied in order, as Pendo does.

Every request needs `x-pendo-integration-key`. Failing on command: `mode` "ok", a status as text (the whole request
answered with it; "429" comes with Retry-After) or "hang"; `refused_visitors` (an operation naming one fails with
400, and changes nothing); `busy` (that many PATCHes answered 409 "Operation in progress", as Pendo does while it
writes a segment); `create_status` (creates answered with it); `delay_seconds` before answering.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import serving

MAX_VISITORS = 1000


@dataclass
class Segment:
    """One segment: its name and visitors."""

    name: str
    visitors: set[str]


@dataclass
class FakePendoSegments:
    """What the fake holds, what it was sent, and how it answers now."""

    integration_key: str = "integration-key"
    mode: str = "ok"
    retry_after: str = "1"
    refused_visitors: set[str] = field(default_factory=set)
    busy: int = 0
    delay_seconds: float = 0.0
    segments: dict[str, Segment] = field(default_factory=dict)
    creations: list[str] = field(default_factory=list)  # names, in order
    patches: list[tuple[str, list[dict[str, Any]], int]] = field(default_factory=list)  # segment, operations, status
    arrived: int = 0
    create_status: int | None = None  # when set, every create is answered with it (and creates nothing)
    create_attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def add_segment(self, segment_id: str, name: str, visitors: set[str] | None = None) -> None:
        """A segment Pendo already has."""
        with self.lock:
            self.segments[segment_id] = Segment(name, set(visitors or ()))

    def members(self, segment_id: str) -> set[str]:
        """The segment's visitors now."""
        with self.lock:
            return set(self.segments[segment_id].visitors)

    def by_name(self, name: str) -> list[str]:
        """The ids of the segments with this name."""
        with self.lock:
            return [segment_id for segment_id, segment in self.segments.items() if segment.name == name]

    def answer(self, method: str, path: str, key: str | None, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request."""
        with self.lock:
            self.arrived += 1
        if self.mode not in ("ok", "hang"):
            status = int(self.mode)
            return status, ({"Retry-After": self.retry_after} if status == 429 else {}), b"not now"
        if key != self.integration_key:
            return 401, {}, b"invalid integration key"
        parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
        if parts[:3] != ["api", "v1", "segment"]:
            return 404, {}, b"not found"
        try:
            document = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, {}, b"body is not JSON"
        if method == "POST" and parts[3:] == ["upload"]:
            return self._create(document)
        if len(parts) < 4 or parts[3] not in self.segments:
            return 404, {}, b"segment not found"
        segment_id = parts[3]
        if method == "GET" and len(parts) == 4:
            with self.lock:
                segment = self.segments[segment_id]
                found = {"id": segment_id, "name": segment.name, "visitorCount": len(segment.visitors)}
            return 200, {"Content-Type": "application/json"}, json.dumps(found).encode()
        if method == "PATCH" and parts[4:] == ["visitor"]:
            return self._patch(segment_id, document)
        return 404, {}, b"not found"

    def _create(self, document: Any) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.create_attempts += 1
        if self.create_status is not None:
            return self.create_status, {}, b"segment name not accepted"
        if not isinstance(document, dict) or not isinstance(document.get("name"), str):
            return 400, {}, b"name is required"
        visitors = document.get("visitors")
        if not isinstance(visitors, list) or not visitors or not all(isinstance(v, str) for v in visitors):
            return 400, {}, b"visitors must be a non-empty list of visitor ids"
        with self.lock:
            segment_id = f"seg{len(self.segments) + 1}x{int(time.time() * 1000) % 100000}"
            self.segments[segment_id] = Segment(document["name"], set(visitors))
            self.creations.append(document["name"])
        return 200, {"Content-Type": "application/json"}, json.dumps({"segmentId": segment_id}).encode()

    def _patch(self, segment_id: str, document: Any) -> tuple[int, dict[str, str], bytes]:
        operations = document.get("patch") if isinstance(document, dict) else None
        if not isinstance(operations, list) or not all(
            isinstance(item, dict)
            and item.get("op") in ("add", "remove")
            and item.get("path") == "/visitors"
            and isinstance(item.get("value"), list)
            for item in operations
        ):
            return 400, {}, b"patch must be a list of add/remove operations on /visitors"
        if sum(len(item["value"]) for item in operations) > MAX_VISITORS:
            return 400, {}, b"at most 1000 visitors per request"
        with self.lock:
            if self.busy > 0:
                self.busy -= 1
                self.patches.append((segment_id, operations, 409))
                return 409, {}, b"Operation in progress"
            results = []
            visitors = self.segments[segment_id].visitors
            for item in operations:
                operation = {"op": item["op"], "path": item["path"]}
                refused = sorted(set(item["value"]) & self.refused_visitors)
                if refused:
                    results.append({"status": 400, "message": f"invalid visitor {refused[0]}", "operation": operation})
                    continue
                if item["op"] == "add":
                    visitors.update(item["value"])
                else:
                    visitors.difference_update(item["value"])
                results.append({"status": 200, "message": "OK", "operation": operation})
            self.patches.append((segment_id, operations, 200))
        return 200, {"Content-Type": "application/json"}, json.dumps({"multistatus": results}).encode()


@contextmanager
def fake_pendo_segments(**settings: Any) -> Iterator[FakePendoSegments]:
    """A running fake on loopback; its `base_url` stands for `https://app.pendo.io`."""
    fake = FakePendoSegments(**settings)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if fake.mode == "hang":
                while fake.mode == "hang":
                    time.sleep(0.05)
                self.close_connection = True
                return
            status, headers, body = fake.answer(
                self.command, self.path, self.headers.get("x-pendo-integration-key"), raw
            )
            if fake.delay_seconds:
                # Applied, but not yet answered: a relay killed now never learns it was.
                time.sleep(fake.delay_seconds)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = _serve

    with serving(Handler) as server:
        fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield fake
        finally:
            fake.mode = "ok"  # releases requests held by a hang, so the server can stop
