"""A local stand-in for Pendo's metadata API: a real HTTP server on loopback that stores what it accepts.

`POST /api/v1/metadata/{visitor|account|parentAccount}/{agent|custom}/value[?create=true]` with the header
`x-pendo-integration-key` and a JSON list of `{"visitorId"|"accountId"|"parentAccountId": id, "values": {...}}`.
It answers as Pendo documents: 200 with `{"kind", "total", "updated", "failed", "missing"}`, where records it does
not know are `missing` (and fail) unless `?create=true`; custom fields must be declared (`custom_fields`) or the
whole request is refused with 400 naming them; a wrong key gets 401. Its mode can be switched: ok, any status
code as text ("500"; "429" comes with Retry-After, `retry_after`), or hang (never answers until switched back).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.local_http import serving

ID_KEYS = {"visitor": "visitorId", "account": "accountId", "parentAccount": "parentAccountId"}


@dataclass
class RecordedRequest:
    """One request the fake answered, and how."""

    kind: str
    group: str
    create: bool
    key: str | None
    rows: Any
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakePendoMetadata:
    """What the fake stores, what it was sent, and how it answers now."""

    integration_key: str = "integration-key"
    mode: str = "ok"
    retry_after: str = "0"
    hung: int = 0  # requests received in hang mode
    # Up to this many seconds (at random) before a request is applied and answered, as a busy Pendo might take:
    # requests under way together may then be applied in any order.
    latency: float = 0.0
    # Records whose values it refuses (400 naming no field), as Pendo refuses a value it cannot store.
    refused_records: set[str] = field(default_factory=set)
    custom_fields: dict[str, set[str]] = field(default_factory=dict)
    # (kind, record id) → group → field → value
    records: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def values(self, kind: str, record_id: str, group: str) -> dict[str, Any]:
        """The stored values of one record's field group."""
        with self.lock:
            return dict(self.records.get((kind, record_id), {}).get(group, {}))

    def know(self, kind: str, record_id: str) -> None:
        """A record Pendo already has (so it updates without create=true)."""
        with self.lock:
            self.records.setdefault((kind, record_id), {})

    def answer(self, path: str, key: str | None, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request."""
        parts = urlsplit(path)
        segments = parts.path.strip("/").split("/")
        if len(segments) != 6 or segments[:3] != ["api", "v1", "metadata"] or segments[5] != "value":
            return 404, {}, b"not found"
        kind, group = segments[3], segments[4]
        if kind not in ID_KEYS or group not in ("agent", "custom"):
            return 404, {}, b"not found"
        create = parse_qs(parts.query).get("create") == ["true"]
        try:
            rows = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            rows = None
        status, headers, body = self._answer(kind, group, create, key, rows)
        with self.lock:
            self.requests.append(RecordedRequest(kind, group, create, key, rows, status))
        return status, headers, body

    def _answer(
        self, kind: str, group: str, create: bool, key: str | None, rows: Any
    ) -> tuple[int, dict[str, str], bytes]:
        if self.mode != "ok":
            status = int(self.mode)
            return status, ({"Retry-After": self.retry_after} if status == 429 else {}), b"not accepted"
        if key != self.integration_key:
            return 401, {}, b"invalid integration key"
        id_key = ID_KEYS[kind]
        if not isinstance(rows, list) or not all(
            isinstance(row, dict) and isinstance(row.get(id_key), str) and isinstance(row.get("values"), dict)
            for row in rows
        ):
            return 400, {}, f"body must be a list of {{{id_key!r}: id, 'values': {{...}}}}".encode()
        if any(row[id_key] in self.refused_records for row in rows):
            return 400, {}, b"a record holds a value that cannot be stored"
        if group == "custom":
            declared = self.custom_fields.get(kind, set())
            unknown = sorted({name for row in rows for name in row["values"]} - declared)
            if unknown:
                return 400, {}, f"unknown custom field(s) for {kind}: {', '.join(unknown)}".encode()
        missing: list[str] = []
        with self.lock:
            for row in rows:
                record = (kind, row[id_key])
                if record not in self.records and not create:
                    missing.append(row[id_key])
                    continue
                self.records.setdefault(record, {}).setdefault(group, {}).update(row["values"])
        summary = {
            "kind": kind,
            "total": len(rows),
            "updated": len(rows) - len(missing),
            "failed": len(missing),
            "missing": missing,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(summary).encode()


@contextmanager
def fake_pendo_metadata(**settings: Any) -> Iterator[FakePendoMetadata]:
    """A running fake on loopback; its `base_url` stands for `https://app.pendo.io`."""
    fake = FakePendoMetadata(**settings)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if fake.latency:
                time.sleep(random.uniform(0, fake.latency))
            if fake.mode == "hang":
                with fake.lock:
                    fake.hung += 1
                while fake.mode == "hang":
                    time.sleep(0.05)
                self.close_connection = True
                return
            status, headers, body = fake.answer(self.path, self.headers.get("x-pendo-integration-key"), raw)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as server:
        fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield fake
        finally:
            fake.mode = "ok"  # releases requests held by a hang, so the server can stop
