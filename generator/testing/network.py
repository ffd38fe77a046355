"""The browser context's routing for the test kit: Pendo's and Segment's hosts answered locally and recorded.

Every request the page makes goes through one handler. Pendo's hosts (region CDNs, data hosts, the config's
CNAME) get the kit's agent and a local answer for every beacon; Segment's CDN gets the packaged analytics.js
and settings for any write key, its API a local answer; the machine's own hosts (and hosts the user allows)
go through untouched; anything else is aborted and listed, so nothing reaches the internet.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from generator.demo.beacons import TRANSPARENT_GIF, jzb_payloads
from generator.paths import ANALYTICS_NEXT_DIR
from generator.regions import APP_HOSTS, CDN_HOSTS
from generator.testing.agents import AgentSource

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Route

AGENT_PATH = re.compile(r"^/agent/static/([^/]+)/pendo\.js$")
SEGMENT_LOADER = re.compile(r"^/analytics\.js/v1/([^/]+)/analytics\.min\.js$")
SEGMENT_SETTINGS = re.compile(r"^/v1/projects/([^/]+)/settings$")
RECORDER_PATH = "/data/segment-pendo-kit/call"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}
SEGMENT_CDN_HOSTS = {"cdn.segment.com", "cdn.segment.io"}
SEGMENT_API_HOSTS = {"api.segment.io", "events.eu1.segmentapis.com"}


@dataclass(frozen=True)
class PendoHosts:
    """Where the config's Pendo lives: the region, and a CNAME host for the agent and data if any."""

    region: str = "io"
    cname_hosts: frozenset[str] = frozenset()

    def is_pendo(self, host: str) -> bool:
        """A host the agent or the script can reach."""
        return host in self.cname_hosts or host == "pendo.io" or host.endswith(".pendo.io")

    def region_of(self, host: str) -> str:
        """The region whose CDN or app host this is; the config's region for a CNAME."""
        for table in (CDN_HOSTS, APP_HOSTS):
            for region, name in table.items():
                if name == host:
                    return region
        return self.region


@dataclass
class Recording:
    """What the page sent: the agent's beacons, the recorder's calls, Segment's API bodies, aborted requests."""

    agent_requests: list[str] = field(default_factory=list)
    pendo_payloads: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    segment_loaded: list[str] = field(default_factory=list)
    segment_bodies: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Network:
    """Installs the routing on a browser context and keeps the recording."""

    agent: AgentSource
    hosts: PendoHosts
    allowed_hosts: frozenset[str] = frozenset()
    recording: Recording = field(default_factory=Recording)

    def install(self, context: BrowserContext) -> None:
        """Route every request of the context (the test's own routes, registered later, still come first)."""
        context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or self._is_local(host):
            route.fallback()
        elif self.hosts.is_pendo(host):
            self._pendo(route, host, parts.path)
        elif host in SEGMENT_CDN_HOSTS:
            self._segment_cdn(route, parts.path)
        elif host in SEGMENT_API_HOSTS:
            self._segment_api(route)
        else:
            self.recording.blocked.append(url)
            route.abort("blockedbyclient")

    def _is_local(self, host: str) -> bool:
        return host in LOCAL_HOSTS or host.endswith(".localhost") or host in self.allowed_hosts

    def _pendo(self, route: Route, host: str, path: str) -> None:
        request = route.request
        if match := AGENT_PATH.match(path):
            self.recording.agent_requests.append(request.url)
            region = self.hosts.region_of(host)
            origin = f"https://{host}" if host in self.hosts.cname_hosts else f"https://{APP_HOSTS[region]}"
            script = self.agent.script(match.group(1), region, origin)
            route.fulfill(body=script, content_type="application/javascript")
        elif path == RECORDER_PATH:
            self._record_call(request.post_data)
            route.fulfill(status=204, body="")
        elif path.startswith("/data/"):
            try:
                payloads = jzb_payloads(request.url, request.post_data)
            except (ValueError, json.JSONDecodeError):
                payloads = []
            with self.recording.lock:
                self.recording.pendo_payloads.extend(payloads)
            if path.split("/")[2].endswith(".gif"):
                route.fulfill(body=TRANSPARENT_GIF, content_type="image/gif")
            else:
                route.fulfill(json={})
        else:
            route.fulfill(status=404, body="", content_type="text/plain")

    def _record_call(self, body: str | None) -> None:
        try:
            record = json.loads(body or "")
        except json.JSONDecodeError:
            return
        if isinstance(record, dict):
            with self.recording.lock:
                self.recording.calls.append(record)

    def _segment_cdn(self, route: Route, path: str) -> None:
        if SEGMENT_LOADER.match(path):
            self.recording.segment_loaded.append(route.request.url)
            route.fulfill(path=ANALYTICS_NEXT_DIR / "standalone.js", content_type="application/javascript")
        elif match := SEGMENT_SETTINGS.match(path):
            route.fulfill(json=segment_settings(match.group(1)))
        elif path.startswith("/analytics-next/bundles/") and (ANALYTICS_NEXT_DIR / Path(path).name).is_file():
            route.fulfill(path=ANALYTICS_NEXT_DIR / Path(path).name, content_type="application/javascript")
        else:
            route.fulfill(status=404, body="", content_type="text/plain")

    def _segment_api(self, route: Route) -> None:
        body = route.request.post_data
        try:
            document = json.loads(body) if body else None
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            with self.recording.lock:
                self.recording.segment_bodies.append(document)
        route.fulfill(json={"success": True})


def segment_settings(write_key: str) -> dict[str, Any]:
    """The CDN settings analytics.js 2.0 loads for a write key: Segment's own destination only."""
    return {
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": "api.segment.io/v1"}},
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def hosts_of(urls: Iterable[str]) -> list[str]:
    """The distinct hosts of some URLs, in order of first sight."""
    seen: dict[str, None] = {}
    for url in urls:
        seen.setdefault(urlsplit(url).netloc, None)
    return list(seen)
