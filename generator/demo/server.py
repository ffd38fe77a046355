"""`python -m generator serve`: the demo site on loopback, with local stand-ins for Segment and Pendo.

The page loads the real analytics.js 2.0 and the real Pendo agent from this server, never from the
internet: analytics.js is pointed here through the snippet's CDN setting and Segment's settings,
and the agent is served with this server as its data host. What the agent sends is decoded and
shown on the page. The script is rebuilt when the config, a template or a static module changes.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from generator.config_loader import load_config
from generator.demo import guides, local_agent
from generator.demo.beacons import TRANSPARENT_GIF, jzb_payloads
from generator.errors import GeneratorError
from generator.paths import ANALYTICS_NEXT_DIR, SITE_DIR
from generator.pipeline import build
from generator.regions import track_events_url
from generator.tag import script_tag
from generator.testing.agents import AgentSource
from generator.watch import source_fingerprint

ANALYTICS_NEXT = ANALYTICS_NEXT_DIR
DEMO_WRITE_KEY = "demo_write_key"
_SITE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/demo.js": ("demo.js", "application/javascript"),
    "/demo.css": ("demo.css", "text/css"),
    "/segment-snippet.js": ("segment-snippet.js", "application/javascript"),
    "/bench.html": ("bench.html", "text/html; charset=utf-8"),
}
# Where the stand-in agent's recorder posts each call the page made (see generator/testing/recorder.js).
STAND_IN_CALLS = "segment-pendo-kit"
_AGENT = re.compile(r"^/agent/static/([^/]+)/pendo\.js$")
MAX_LOG_ENTRIES = 2_000


@dataclass
class DemoState:
    """The config being served, its latest build, and everything Segment and Pendo received."""

    config_path: Path
    build_dir: Path
    debug_build_dir: Path
    origin: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    build_error: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _fingerprint: tuple[int, ...] = ()

    def rebuild_if_changed(self) -> None:
        """Build again when the config or a template/static file changed; keep the last good build on error."""
        fingerprint = source_fingerprint(self.config_path)
        with self.lock:
            if fingerprint == self._fingerprint:
                return
            self._fingerprint = fingerprint
            try:
                config = load_config(self.config_path)
                self.manifest = build(config, self.build_dir)
                self.facts = _config_facts(config)
                # The page runs a debug build of the same config, so it can show each decision.
                debug_config = config.model_copy(update={"build": config.build.model_copy(update={"debug": True})})
                build(debug_config, self.debug_build_dir)
                self.build_error = None
            except GeneratorError as error:
                self.build_error = str(error)

    def record(self, source: str, entry: dict[str, Any]) -> None:
        """Append one received request to the log the page polls."""
        with self.lock:
            self.log.append({"seq": self.next_seq, "source": source, **entry})
            del self.log[: max(0, len(self.log) - MAX_LOG_ENTRIES)]

    @property
    def next_seq(self) -> int:
        """The sequence number the next log entry gets: a page load shows only entries from here on."""
        return self.log[-1]["seq"] + 1 if self.log else 0


class DemoServer(ThreadingHTTPServer):
    """The demo's HTTP server; removes its temporary build folder when closed."""

    temporary_dir: Path | None = None

    def server_close(self) -> None:
        """Close the socket, then remove the builds if they were in a temporary folder."""
        super().server_close()
        if self.temporary_dir is not None:
            shutil.rmtree(self.temporary_dir, ignore_errors=True)


def make_server(
    config_path: Path, *, host: str = "127.0.0.1", port: int = 8000, build_dir: Path | None = None
) -> DemoServer:
    """A demo server bound to host:port (port 0 picks a free one); call serve_forever() on it.

    Builds go to build_dir, or to a temporary folder removed by server_close(); never into the package.
    """
    temporary = None if build_dir is not None else Path(tempfile.mkdtemp(prefix="segment-pendo-demo-"))
    root = build_dir or temporary
    assert root is not None
    state = DemoState(config_path=config_path, build_dir=root / "production", debug_build_dir=root / "debug")
    try:
        state.rebuild_if_changed()
        if state.build_error:
            raise GeneratorError(state.build_error)
        server = DemoServer((host, port), _handler_for(state))
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    server.temporary_dir = temporary
    state.origin = f"http://{host}:{server.server_address[1]}"
    return server


def _config_facts(config: Any) -> dict[str, Any]:
    """What the page says about the config it serves: region, agent URL, the subscriptions and guide events."""
    facts: dict[str, Any] = {
        "region": config.pendo.region,
        "agentUrl": config.pendo.agent_url,
        "subscriptions": [
            {"name": item.label, "action": item.action, "when": item.fql, "enabled": item.enabled}
            for item in config.subscriptions
        ],
        "webhook": None,
        # Pendo event type → Segment track event name, when [guide_events] is on.
        "guideEvents": config.guide_events.track.forwarded() if config.guide_events.enabled else None,
    }
    if config.webhook is not None:
        facts["webhook"] = {
            "name": config.webhook.name,
            "when": config.webhook.subscribe,
            "url": track_events_url(config.pendo.region),
        }
    return facts


def _handler_for(state: DemoState) -> type[BaseHTTPRequestHandler]:
    class DemoHandler(BaseHTTPRequestHandler):
        server_version = "segment-pendo-demo"

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the terminal for build messages."""

        def do_GET(self) -> None:
            self._dispatch(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._dispatch(self.rfile.read(min(length, 5_000_000)).decode("utf-8", "replace"))

        def _dispatch(self, body: str | None) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if path in _SITE_FILES:
                self._site_file(path)
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            elif path.startswith("/build/"):
                self._send_file(state.debug_build_dir / Path(path).name, "application/javascript")
            elif path == "/demo/state":
                state.rebuild_if_changed()
                self._demo_state(int(parse_qs(parts.query).get("since", ["0"])[0]))
            elif path.startswith("/segment-cdn/"):
                self._segment_cdn(path.removeprefix("/segment-cdn"))
            elif path.startswith("/segment-api/"):
                state.record("segment", {"endpoint": path.rsplit("/", 1)[-1], "event": _json_or_none(body)})
                self._send(200, b'{"success":true}', "application/json")
            elif match := _AGENT.match(path):
                self._agent(match.group(1))
            elif path.startswith("/data/"):
                self._pendo_data(path.split("/")[2], body)
            else:
                self._send(404, b"not found", "text/plain")

        def _site_file(self, path: str) -> None:
            body = (SITE_DIR / _SITE_FILES[path][0]).read_bytes()
            if path == "/":
                state.rebuild_if_changed()
                # This page load's log starts here: what earlier loads (or reloads) received is not shown.
                body = body.replace(b'data-log-start="0"', f'data-log-start="{state.next_seq}"'.encode())
            self._send(200, body, _SITE_FILES[path][1])

        def _demo_state(self, since: int) -> None:
            with state.lock:
                manifest = state.manifest
                payload = {
                    "config": str(state.config_path),
                    **state.facts,
                    "manifest": manifest,
                    "tag": script_tag(manifest) if manifest else "",
                    "agentMissing": local_agent.find_agent_package() is None,
                    "agentVersion": local_agent.AGENT_VERSION,
                    "buildError": state.build_error,
                    "writeKey": DEMO_WRITE_KEY,
                    "log": [entry for entry in state.log if entry["seq"] >= since],
                }
            self._send(200, json.dumps(payload).encode(), "application/json")

        def _agent(self, api_key: str) -> None:
            # The page names the key "current": the one in the config being served.
            config = load_config(state.config_path)
            if api_key == "current":
                api_key = config.pendo.api_key
            package = local_agent.find_agent_package()
            if package is None:
                # Without npm's agent the page gets the test kit's recording stand-in, and the page says so.
                script = AgentSource(None).script(api_key, config.pendo.region, state.origin)
            else:
                script = local_agent.agent_script_for(package, api_key, config.pendo.region, state.origin)
            self._send(200, script.encode(), "application/javascript")

        def _pendo_data(self, endpoint: str, body: str | None) -> None:
            if endpoint == STAND_IN_CALLS:
                self._stand_in_call(body)
                return
            state.record("pendo", {"endpoint": endpoint, "payloads": jzb_payloads(self.path, body)})
            if endpoint == "guide.json":
                self._guide_list()
            elif endpoint.endswith(".gif"):
                self._send(200, TRANSPARENT_GIF, "image/gif")
            else:
                self._send(200, b"{}", "application/json")

        def _stand_in_call(self, body: str | None) -> None:
            try:
                call = json.loads(body or "")
            except json.JSONDecodeError:
                call = None
            if isinstance(call, dict):
                state.record("pendo", {"endpoint": STAND_IN_CALLS, "payloads": [call]})
            self._send(204, b"", "text/plain")

        def _guide_list(self) -> None:
            # The demo's guides launch from the page's buttons (launchMethod "api"), not by themselves.
            time.sleep(guides.HOLD_SECONDS)
            request_id = parse_qs(urlsplit(self.path).query).get("id", ["0"])[0]
            demo_guides = [
                {**guides.walkthrough(), "launchMethod": "api"},
                {**guides.snoozable(), "launchMethod": "api"},
            ]
            self._send(200, json.dumps(guides.guide_list_answer(request_id, demo_guides)).encode(), "application/json")

        def _segment_cdn(self, path: str) -> None:
            if re.match(r"^/analytics\.js/v1/[^/]+/analytics\.min\.js$", path):
                self._send_file(ANALYTICS_NEXT / "standalone.js", "application/javascript")
            elif re.match(r"^/v1/projects/[^/]+/settings$", path):
                api_host = f"{urlsplit(state.origin).netloc}/segment-api/v1"
                settings = {
                    "integrations": {"Segment.io": {"apiKey": DEMO_WRITE_KEY, "apiHost": api_host, "protocol": "http"}},
                    "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
                    "metrics": {"sampleRate": 0},
                    "remotePlugins": [],
                }
                self._send(200, json.dumps(settings).encode(), "application/json")
            elif path.startswith("/analytics-next/bundles/"):
                self._send_file(ANALYTICS_NEXT / Path(path).name, "application/javascript")
            else:
                self._send(404, b"not found", "text/plain")

        def _send_file(self, path: Path, content_type: str) -> None:
            if path.is_file():
                self._send(200, path.read_bytes(), content_type)
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return DemoHandler


def _json_or_none(body: str | None) -> Any:
    try:
        return json.loads(body) if body else None
    except json.JSONDecodeError:
        return None
