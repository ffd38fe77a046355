"""A local stand-in for Pendo's Track Events API: a real HTTP server on loopback that records what it accepts.

Its answer can be switched: ok (200), any status code as text ("429" and "503" come with `retry_after` as their
Retry-After header unless it is None), or hang (never answers; recorded as answered 0). `refuse_connections()`
closes its listening socket (connections are refused) until `accept_connections()` opens it again on the same
port. A body that is not JSON is answered 400, as Pendo does. Only requests answered 200 count as received, as
Pendo would only have those; `arrivals` records when each request arrived (time.monotonic()) and what it was
answered.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import QuietServer


@dataclass
class FakePendoTrack:
    """What the fake received and how it answers now."""

    mode: str = "ok"
    received: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)
    refused: int = 0
    retry_after: str | None = "0"
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    refuse_connections: Callable[[], None] = lambda: None
    accept_connections: Callable[[], None] = lambda: None

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
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            mode = fake.mode
            if mode == "hang":
                with fake.lock:
                    fake.arrivals.append((arrived, 0))
                while fake.mode == "hang":
                    time.sleep(0.05)
                self.close_connection = True
                return
            try:
                document = json.loads(body)
            except ValueError:
                mode = "400"
            if mode != "ok":
                status = int(mode)
                with fake.lock:
                    fake.refused += 1
                    fake.arrivals.append((arrived, status))
                self.send_response(status)
                if status in (429, 503) and fake.retry_after is not None:
                    self.send_header("Retry-After", fake.retry_after)
                self.send_header("Content-Length", "12")
                self.end_headers()
                self.wfile.write(b"not accepted")
                return
            with fake.lock:
                fake.arrivals.append((arrived, 200))
                fake.received.append(document)
                fake.secrets.append(self.headers.get("x-pendo-integration-key"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    servers: list[QuietServer] = []

    def listen(port: int) -> None:
        server = QuietServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

    def close() -> None:
        while servers:
            server = servers.pop()
            server.shutdown()
            server.server_close()

    listen(0)
    port = servers[0].server_address[1]
    fake.url = f"http://127.0.0.1:{port}/data/track"
    fake.refuse_connections = close
    fake.accept_connections = lambda: None if servers else listen(port)
    try:
        yield fake
    finally:
        fake.mode = "ok"  # releases requests held by a hang, so the server can stop
        close()
