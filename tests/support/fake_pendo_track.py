"""A local stand-in for Pendo's Track Events API: a real HTTP server on loopback that records what it accepts.

Its answer can be switched: ok (200), any status code as text ("500", "429" comes with Retry-After), or
hang (never answers).
Only requests answered 200 count as received, as Pendo would only have those.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakePendoTrack:
    """What the fake received and how it answers now."""

    mode: str = "ok"
    received: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def names(self) -> list[str]:
        with self.lock:
            return [body["event"] for body in self.received]


@contextmanager
def fake_pendo_track() -> Iterator[FakePendoTrack]:
    fake = FakePendoTrack()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            mode = fake.mode
            if mode == "hang":
                while fake.mode == "hang":
                    time.sleep(0.05)
                self.close_connection = True
                return
            if mode != "ok":
                status = int(mode)
                with fake.lock:
                    fake.refused += 1
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "12")
                self.end_headers()
                self.wfile.write(b"not accepted")
                return
            with fake.lock:
                fake.received.append(json.loads(body))
                fake.secrets.append(self.headers.get("x-pendo-integration-key"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/data/track"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.mode = "ok"
        server.shutdown()
        server.server_close()
