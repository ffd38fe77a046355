"""Run the relay's app under uvicorn, with deadlines for slow clients and a bound on connections."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from generator.relay.client_faults import ClientFaults, UvicornWarnings

# A client gets this long from connecting (or from starting its next request) to its last header line.
HEADER_SECONDS = 10.0
# Idle keep-alive connections are closed after this long.
KEEP_ALIVE_SECONDS = 5
# Beyond this many connections and requests at once, uvicorn answers 503 at once instead of queueing.
MAX_CONNECTIONS = 1_000
PROBES = (b"/livez", b"/readyz")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers do not arrive within HEADER_SECONDS."""

    _header_deadline: asyncio.TimerHandle | None = None
    header_seconds = HEADER_SECONDS
    faults: ClientFaults | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        """A request starts: its headers are due within HEADER_SECONDS."""
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        """The headers arrived in time; the body has its own deadline in the app."""
        self._disarm_header_deadline()
        if self.url.partition(b"?")[0] not in PROBES:
            super().on_headers_complete()
            return
        # A flood of senders must not fail the orchestrator's probes (it would restart a relay that works), and
        # answering them costs next to nothing: they are served beyond the connection limit.
        limit, self.limit_concurrency = self.limit_concurrency, None
        try:
            super().on_headers_complete()
        finally:
            self.limit_concurrency = limit

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing more to time."""
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            if self.faults is not None:
                self.faults.note("slow_headers")
            self.transport.close()


def serve(
    app: Any, host: str, port: int, header_seconds: float = HEADER_SECONDS, faults: ClientFaults | None = None
) -> None:
    """Serve until interrupted; what senders get wrong is counted in faults rather than logged each time."""
    attributes = {"header_seconds": header_seconds, "faults": faults}
    protocol = type("Protocol", (HeaderDeadlineProtocol,), attributes)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        loop="auto",
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=15,
    )
    if faults is not None:
        # After uvicorn.Config, which sets up uvicorn's loggers.
        logging.getLogger("uvicorn.error").addFilter(UvicornWarnings(faults))
    uvicorn.Server(config).run()
