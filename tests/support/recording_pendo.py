"""A fake of Pendo's Track Events API that records every request's time in flight and who sent it, so a test of
several relays can check that no event was ever being sent by two of them at once."""

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

from tests.support.local_http import serving


@dataclass(frozen=True)
class Send:
    """One request answered 200: which event (its properties.i), from whom (the secret), when (monotonic)."""

    index: int
    sender: str
    arrived: float
    answered: float


@dataclass
class RecordingPendo:
    """What the fake received; each request is held up to max_delay seconds, so sends overlap if claims do."""

    max_delay: float = 0.005
    sends: list[Send] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def delivered(self) -> set[int]:
        with self.lock:
            return {send.index for send in self.sends}


@contextmanager
def recording_pendo(max_delay: float = 0.005) -> Iterator[RecordingPendo]:
    fake = RecordingPendo(max_delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            time.sleep(random.uniform(0, fake.max_delay))
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                self.wfile.flush()
            finally:
                # Recorded even if the relay died before reading the answer: Pendo would have the event.
                sender = self.headers.get("x-pendo-integration-key", "")
                with fake.lock:
                    fake.sends.append(Send(body["properties"]["i"], sender, arrived, time.monotonic()))

    with serving(Handler) as server:
        fake.url = f"http://127.0.0.1:{server.server_address[1]}/data/track"
        yield fake
