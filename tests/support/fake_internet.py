"""Every request a test page makes, answered from local files and recorded; nothing leaves the machine."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Route

from generator.demo import local_agent as pendo_agent
from generator.demo.beacons import TRANSPARENT_GIF, jzb_payloads
from generator.paths import NODE_MODULES
from generator.testing.network import segment_settings

SITE = "https://shop.example"
RUDDERSTACK_DATA_PLANE = "https://dataplane.shop.example"
RUDDERSTACK_SDK = (
    NODE_MODULES / "@rudderstack" / "analytics-js" / "dist" / "npm" / "modern" / "bundled" / "umd" / "index.js"
)
ANALYTICS_NEXT = NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd"
_AGENT_PATH = re.compile(r"^/agent/static/([^/]+)/pendo\.js$")
_SEGMENT_LOADER = re.compile(r"^/analytics\.js/v1/([^/]+)/analytics\.min\.js$")
_SEGMENT_SETTINGS = re.compile(r"^/v1/projects/([^/]+)/settings$")


@dataclass
class PendoRequest:
    """One request to a Pendo data host, with its decoded jzb payloads."""

    url: str
    endpoint: str
    payloads: list[Any]


@dataclass
class FakeInternet:
    """Routes a browser context: the shop's pages, Segment's CDN and API, Pendo's CDN and data hosts."""

    context: BrowserContext
    write_key: str = "wk_test_1234"
    agent_behaviour: str = "serve"
    segment_behaviour: str = "serve"
    pages: dict[str, tuple[bytes, str, dict[str, str]]] = field(default_factory=dict)
    agent_requests: list[str] = field(default_factory=list)
    pendo_requests: list[PendoRequest] = field(default_factory=list)
    segment_events: list[dict[str, Any]] = field(default_factory=list)
    rudderstack_events: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    cname_region: str = "io"

    def __post_init__(self) -> None:
        self._asset_regions = {host: region for region, host in pendo_agent.servers()["assetHost"].items()}
        self._data_hosts = {urlsplit(origin).netloc for origin in pendo_agent.servers()["data"].values()}
        self.context.route("**/*", self._route)

    def serve(
        self, path: str, body: str | bytes, content_type: str = "text/html", headers: dict[str, str] | None = None
    ) -> str:
        """Publish a file on the shop's site (with extra response headers) and return its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.pages[path] = (data, content_type, headers or {})
        return SITE + path

    def serve_file(self, path: str, file: Path) -> str:
        """Publish a local file on the shop's site."""
        content_type = "application/javascript" if file.suffix == ".js" else "application/json"
        return self.serve(path, file.read_bytes(), content_type)

    # What Pendo received -------------------------------------------------------------------------

    def pendo_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Events the agent sent (deduplicated: the agent may resend a batch), optionally of one type."""
        seen: set[str] = set()
        events: list[dict[str, Any]] = []
        for request in self.pendo_requests:
            if request.endpoint != "ptm.gif":
                continue
            for payload in request.payloads:
                for event in payload if isinstance(payload, list) else [payload]:
                    fingerprint = json.dumps(event, sort_keys=True)
                    if fingerprint not in seen:
                        seen.add(fingerprint)
                        events.append(event)
        return [event for event in events if kind is None or event.get("type") == kind]

    def tracks(self) -> list[tuple[str, dict[str, Any], str]]:
        """(event name, properties, visitor id) of every track event Pendo received."""
        return [(e["track_event_name"], e["props"], e["visitor_id"]) for e in self.pendo_events("track")]

    def metadata(self) -> list[dict[str, Any]]:
        """The visitor/account metadata of every meta event, in order."""
        return [event["props"] for event in self.pendo_events("meta")]

    def agent_errors(self) -> list[str]:
        """Errors the agent reported about itself."""
        return [request.url for request in self.pendo_requests if request.endpoint == "errorlog"]

    # Routing -------------------------------------------------------------------------------------

    def _route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        handler = self._handler_for(origin, parts.netloc, parts.path)
        if handler is None:
            self.unexpected.append(url)
            route.abort("blockedbyclient")
            return
        handler(route)

    def _handler_for(self, origin: str, host: str, path: str) -> Callable[[Route], None] | None:
        if origin == SITE:
            return self._site
        if host == "cdn.segment.com":
            return self._segment_cdn
        if host == "api.segment.io":
            return self._segment_api
        if origin == RUDDERSTACK_DATA_PLANE:
            return self._rudderstack_data_plane
        if _AGENT_PATH.match(path):
            return self._agent
        if host in self._data_hosts and path.startswith("/data/"):
            return self._pendo_data
        return None

    def _site(self, route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path not in self.pages:
            route.fulfill(status=404, body="not found", content_type="text/plain")
            return
        body, content_type, headers = self.pages[path]
        route.fulfill(status=200, body=body, content_type=content_type, headers=headers)

    def _segment_cdn(self, route: Route) -> None:
        path = urlsplit(route.request.url).path
        if _SEGMENT_LOADER.match(path) and self.segment_behaviour == "abort":
            route.abort("blockedbyclient")
        elif _SEGMENT_LOADER.match(path):
            route.fulfill(path=ANALYTICS_NEXT / "standalone.js", content_type="application/javascript")
        elif match := _SEGMENT_SETTINGS.match(path):
            route.fulfill(json=segment_settings(match.group(1)))
        elif path.startswith("/analytics-next/bundles/") and (ANALYTICS_NEXT / Path(path).name).is_file():
            route.fulfill(path=ANALYTICS_NEXT / Path(path).name, content_type="application/javascript")
        else:
            self.unexpected.append(route.request.url)
            route.fulfill(status=404, body="")

    def _segment_api(self, route: Route) -> None:
        self._record_json_body(route, self.segment_events)
        route.fulfill(json={"success": True})

    def _rudderstack_data_plane(self, route: Route) -> None:
        self._record_json_body(route, self.rudderstack_events)
        route.fulfill(status=200, body="OK", content_type="text/plain")

    def _record_json_body(self, route: Route, into: list[dict[str, Any]]) -> None:
        body = route.request.post_data
        if body:
            try:
                into.append(json.loads(body))
            except json.JSONDecodeError:
                self.unexpected.append(route.request.url)

    def _agent(self, route: Route) -> None:
        url = route.request.url
        self.agent_requests.append(url)
        if self.agent_behaviour == "404":
            route.fulfill(status=404, body="not found")
            return
        if self.agent_behaviour == "abort":
            route.abort("blockedbyclient")
            return
        if self.agent_behaviour == "hang":
            return  # never answered: the request stays pending, as with a stalled CDN
        parts = urlsplit(url)
        api_key = _AGENT_PATH.match(parts.path).group(1)  # type: ignore[union-attr]
        region = self._asset_regions.get(parts.netloc, self.cname_region)
        route.fulfill(body=pendo_agent.agent_script(api_key, region), content_type="application/javascript")

    def _pendo_data(self, route: Route) -> None:
        request = route.request
        endpoint = urlsplit(request.url).path.split("/")[2]
        self.pendo_requests.append(PendoRequest(request.url, endpoint, jzb_payloads(request.url, request.post_data)))
        if endpoint.endswith(".gif"):
            route.fulfill(body=TRANSPARENT_GIF, content_type="image/gif")
        else:
            route.fulfill(json={})


def wait_until(
    page: Page, condition: Callable[[], bool], *, timeout_ms: int = 10_000, flush_pendo: bool = True
) -> None:
    """Poll until condition holds, asking the agent to send what it has batched in between."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_ms} ms")
        if flush_pendo:
            page.evaluate("() => { if (window.pendo && pendo.isReady && pendo.isReady()) pendo.flushNow(true); }")
        page.wait_for_timeout(100)
