"""A `python -m generator relay` process for tests, and what they send it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generator.paths import PROJECT_ROOT

SHARED_SECRET = "relay-shared-secret"
PENDO_SECRET = "pendo-track-secret"
INTEGRATION_KEY = "integration-key"  # what tests/support/fake_pendo_metadata.py takes by default
BASIC = "Basic " + base64.b64encode(f"{SHARED_SECRET}:".encode()).decode()

# An hour ago, with milliseconds: Pendo refuses events more than 7 days old, so test events are recent.
RECENT_MS = (int(time.time()) - 3600) * 1000 + 250
RECENT = datetime.fromtimestamp(RECENT_MS / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def track(index: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": f"Server Event {index}",
        "messageId": f"msg-{index}",
        "userId": f"user-{index % 3}",
        "timestamp": RECENT,
        "properties": {"i": index},
        "context": {"groupId": "acct-1", "ip": "203.0.113.9", "page": {"url": "https://x.example/p", "title": "P"}},
        **extra,
    }


class Relay:
    """A `python -m generator relay` process; its output goes to relay.log in workdir."""

    def __init__(
        self,
        workdir: Path,
        pendo_url: str,
        config: str = '[pendo]\napi_key = "k-1"\n',
        *,
        db: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.pendo_url = pendo_url
        self.port = free_port()
        self.db = db or workdir / "outbox.sqlite3"
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "relay.log"
        (workdir / "pendo.toml").write_text(config)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "generator",
            "relay",
            "--config",
            str(self.workdir / "pendo.toml"),
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--pendo-url",
            self.pendo_url,
            *self.options,
        ]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "PENDO_TRACK_EVENT_SECRET": PENDO_SECRET,
            "RELAY_SHARED_SECRET": SHARED_SECRET,
            "PENDO_INTEGRATION_KEY": INTEGRATION_KEY,
        }

    def start(self) -> Relay:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=PROJECT_ROOT, env=self.environment(), stdout=log, stderr=log
            )
        wait_for(lambda: self.get("/healthz")[0] in (200, 503), "relay to start", timeout=60)
        return self

    def run_to_exit(self) -> subprocess.CompletedProcess[str]:
        """Start it expecting it to refuse to run."""
        return subprocess.run(
            self.command(),
            check=False,
            cwd=PROJECT_ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def post(
        self,
        path: str,
        document: Any,
        *,
        secret: str = SHARED_SECRET,
        sign: bool = False,
        encoding: str | None = None,
        timeout: float = 10,
    ) -> tuple[int, Any]:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        if encoding:
            headers["Content-Encoding"] = encoding
        if sign:
            headers["X-Signature"] = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        else:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, headers=headers)
        return self._send(request, timeout)

    def get(self, path: str, *, secret: str | None = SHARED_SECRET, accept: str | None = None) -> tuple[int, Any]:
        headers = {}
        if secret is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
        if accept:
            headers["Accept"] = accept
        return self._send(urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers), 10)

    def get_text(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": BASIC})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()

    @staticmethod
    def _send(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except OSError:
            return 0, None

    def raw(self, data: bytes, *, wait: float = 10.0) -> bytes:
        """Send raw bytes on a new connection; what came back before the relay closed it or wait ran out."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait) as connection:
            connection.sendall(data)
            received = b""
            try:
                while chunk := connection.recv(65536):
                    received += chunk
                    if b"\r\n\r\n" in received and _complete(received):
                        break
            except TimeoutError:
                pass
            return received

    def metrics(self) -> dict[str, Any]:
        status, document = self.get("/metrics")
        assert status == 200, (status, document)
        result: dict[str, Any] = document
        return result

    def health(self) -> tuple[int, dict[str, Any]]:
        status, document = self.get("/healthz")
        return status, document or {}

    def quiet(self) -> bool:
        """/healthz says ok with nothing pending, paused or wrong anywhere (Pendo's problems included)."""
        status, document = self.health()
        quiet = document.get("problems") == {} and document.get("paused") == {} and document.get("pending") == 0
        return status == 200 and quiet

    def destination(self, name: str = "track") -> dict[str, Any]:
        """What /healthz says about one destination ({} while it says nothing)."""
        found: dict[str, Any] = self.health()[1].get("destinations", {}).get(name, {})
        return found


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def assert_recovered(destination: dict[str, Any]) -> None:
    """A destination in /healthz that works again: brake closed, nothing wrong, paused or waiting."""
    assert destination["state"] == "ok", destination
    assert (destination["brake"], destination["paused"], destination["throttled"]) == ("closed", False, False)
    assert (destination["pending"], destination["oldest_pending_seconds"]) == (0, None), destination
    assert "problem" not in destination and "paused_seconds" not in destination, destination
