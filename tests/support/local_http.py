"""The lifecycle the local fakes of Pendo share: a threaded HTTP server on a free loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    """Serves each request in its own daemon thread; a sender that hangs up mid-request is not an error here."""

    daemon_threads = True
    # Several relays (and their restarts) may connect at once.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Say nothing: tests kill relays mid-request on purpose."""


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[QuietServer]:
    """Serve handler on 127.0.0.1 (a free port) until the block ends, then shut down and close."""
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
