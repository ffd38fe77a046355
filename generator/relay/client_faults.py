"""What senders get wrong (dropped connections, malformed HTTP, slow headers or bodies): counted, logged sparingly.

Anyone who can connect can cause these as often as they like, so none of them may fill the log: each kind is one
short line at most once a minute (saying how many more there were), and every one is counted for /metrics. No
text a sender chose is logged.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

log = logging.getLogger("generator.relay")
LOG_EVERY_SECONDS = 60.0
# Each kind, and the line the log gets for it.
KINDS = {
    "disconnected": "a sender closed its connection before its body was complete",
    "malformed": "a sender's request was not valid HTTP/1.1 (answered 400)",
    "slow_headers": "a sender's headers did not arrive in time (connection closed)",
    "slow_body": "a sender's body did not arrive in time (answered 408)",
    "upgrade": "a sender asked to upgrade the connection (say, to a WebSocket), which the relay does not do",
    "over_capacity": "more connections than the relay serves at once (answered 503)",
}
# uvicorn's per-request warnings, by the kind they are.
UVICORN_WARNINGS = {
    "Invalid HTTP request received.": "malformed",
    "Unsupported upgrade request.": "upgrade",
    "Exceeded concurrency limit.": "over_capacity",
}
# Said by uvicorn right after "Unsupported upgrade request."; the line for the upgrade covers it.
UVICORN_FOLLOW_UPS = ("No supported WebSocket library detected",)


class ClientFaults:
    """Counts of sender faults by kind, with a log line per kind at most every LOG_EVERY_SECONDS."""

    def __init__(self, log_every_seconds: float = LOG_EVERY_SECONDS) -> None:
        """Nothing counted yet."""
        self.log_every_seconds = log_every_seconds
        self.counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def note(self, kind: str) -> None:
        """Count one fault of kind; log it unless its kind was logged within the last interval."""
        self.counts[kind] += 1
        now = time.monotonic()
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.log_every_seconds:
            self._unlogged[kind] += 1
            return
        more = self._unlogged.pop(kind, 0)
        since = f" (and {more} more since the last such line)" if more else ""
        log.warning("%s%s", KINDS.get(kind, kind), since)
        self._logged_at[kind] = now

    def snapshot(self) -> dict[str, int]:
        """Every kind's count, zero included (so a dashboard sees each from the start)."""
        return {kind: self.counts.get(kind, 0) for kind in KINDS}


class UvicornWarnings(logging.Filter):
    """Turns uvicorn's per-request warnings about senders into counted, rate-limited faults."""

    def __init__(self, faults: ClientFaults) -> None:
        """Count into faults."""
        super().__init__()
        self.faults = faults

    def filter(self, record: logging.LogRecord) -> bool:
        """Let everything else through."""
        message = record.getMessage()
        kind = UVICORN_WARNINGS.get(message)
        if kind is not None:
            self.faults.note(kind)
            return False
        return not message.startswith(UVICORN_FOLLOW_UPS)
