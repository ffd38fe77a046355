"""What a page does with Segment and Pendo, read in headless Chromium: `segment-pendo verify URL`.

One page load, then a wait: which analytics.js client the page has, whether the segment-pendo script is on it
(and, given a config, whether it is that config's build), where the Pendo agent came from, who Pendo thinks the
visitor and account are, console errors, CSP violations, and the track events the agent sent.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from generator.chromium import CHROMIUM_FLAGS, chromium_executable
from generator.demo.beacons import jzb_payloads
from generator.errors import GeneratorError
from generator.testing import observed

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Response

SCRIPT_NAME = re.compile(r"segment-pendo(\.[0-9a-f]+)?(\.min)?\.js(\?|$)")
AGENT_SCRIPT = re.compile(r"/agent/static/[^/]+/pendo\.js")
PLUGIN_NAME = "Pendo Web (segment-pendo)"
# Records CSP violations from the first byte of the page on.
WATCH_CSP = """
window.__segmentPendoVerify = { csp: [] };
document.addEventListener('securitypolicyviolation', function (event) {
  window.__segmentPendoVerify.csp.push(event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline code'));
});
"""
READ_PAGE = """([key, name]) => {
  const client = window[key];
  const pendo = window.pendo;
  let ready = false;
  try {
    ready = !!(pendo && typeof pendo.isReady === 'function' && pendo.isReady());
  } catch (e) {}
  const plugins = (client && client.queue && client.queue.plugins) || [];
  return {
    client: !!(client && client.initialized === true),
    clientVersion: (client && client.VERSION) || null,
    stub: Array.isArray(client),
    plugin: plugins.some((p) => p && p.name === name),
    ready,
    agentVersion: (pendo && pendo.VERSION) || null,
    visitor: ready && pendo.getVisitorId ? pendo.getVisitorId() : null,
    account: ready && pendo.getAccountId ? pendo.getAccountId() : null,
    scripts: Array.from(document.scripts).map((s) => ({ src: s.src, integrity: s.integrity || '' })),
    csp: (window.__segmentPendoVerify && window.__segmentPendoVerify.csp) || [],
  };
}"""


@dataclass
class Report:
    """What verify saw on the page."""

    url: str
    analytics_js: str | None = None  # the client's version, when a loaded client was found
    global_key: str = "analytics"
    script: str | None = None  # the segment-pendo script's URL
    script_integrity: str | None = None
    script_matches_config: bool | None = None
    plugin_registered: bool = False
    agent: str | None = None  # where the agent came from
    agent_version: str | None = None
    agent_served: str | None = None  # with --offline: "real" or "stand-in"
    visitor: str | None = None
    account: str | None = None
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return asdict(self)

    def lines(self) -> list[str]:
        """One line per finding."""
        lines = [
            f"analytics.js: {'loaded, version ' + self.analytics_js if self.analytics_js else 'not found'}"
            f" at window.{self.global_key}",
        ]
        if self.script is None:
            lines.append("segment-pendo script: not on the page")
        else:
            sri = f"SRI {self.script_integrity}" if self.script_integrity else "no SRI attribute"
            build = {True: "; the build of --config", False: "; NOT the build of --config", None: ""}
            connected = "connected to analytics.js" if self.plugin_registered else "not connected to analytics.js"
            matched = build[self.script_matches_config]
            lines.append(f"segment-pendo script: {self.script} ({sri}{matched}); {connected}")
        version = f" (agent {self.agent_version})" if self.agent_version else ""
        local = f", answered locally by the {self.agent_served} agent" if self.agent and self.agent_served else ""
        lines.append(f"Pendo agent: {self.agent or 'not loaded'}{version}{local}")
        lines.append(f"pendo visitor: {self.visitor or '(none)'}; account: {self.account or '(none)'}")
        lines.append(f"console errors: {'; '.join(self.console_errors) if self.console_errors else 'none'}")
        lines.append(f"CSP violations: {'; '.join(self.csp_violations) if self.csp_violations else 'none'}")
        names = ", ".join(repr(track["name"]) for track in self.tracks)
        lines.append(f"track events sent to Pendo: {names or 'none'}")
        return lines


@dataclass
class Expectations:
    """What the page must show for verify to pass."""

    visitor: str | None = None
    account: str | None = None


def verify(
    url: str,
    *,
    wait_seconds: float,
    offline: bool,
    config_path: Path | None,
    expectations: Expectations,
) -> Report:
    """Open the page, wait, and report; raises GeneratorError when no browser runs or the page does not load."""
    try:
        from playwright.sync_api import Error, sync_playwright  # noqa: PLC0415
    except ImportError:
        raise GeneratorError("verify needs Playwright: pip install 'segment-pendo[testing]'") from None
    global_key, expected_sri = _from_config(config_path)
    report = Report(url, global_key=global_key)
    beacons: list[Any] = []
    with sync_playwright() as playwright:
        browser = _launch(playwright, Error)
        try:
            context = browser.new_context()
            if offline:
                report.agent_served = _route_offline(context, url)
            context.add_init_script(WATCH_CSP)
            page = context.new_page()
            page.on("console", lambda message: _console(report, message.type, message.text))
            page.on("pageerror", lambda error: report.console_errors.append(str(error)[:300]))
            page.on("request", lambda request: _beacon(request, beacons))
            scripts: dict[str, bytes] = {}
            page.on("response", lambda response: _script_body(response, scripts))
            try:
                response = page.goto(url, wait_until="load", timeout=30_000)
            except Error as error:
                raise GeneratorError(f"{url} did not load: {_first_line(str(error))}") from None
            if response is not None and response.status >= 400:
                raise GeneratorError(f"{url} did not load: HTTP {response.status}")
            _settle(page, wait_seconds)
            _read(page, report, scripts, expected_sri)
        finally:
            browser.close()
    report.tracks = [
        {"name": event.name, "properties": event.properties}
        for event in observed.tracks_from_events(observed.agent_events(beacons))
    ]
    _judge(report, expectations)
    return report


def _launch(playwright: Any, error_type: type[Exception]) -> Any:
    executable = chromium_executable()
    attempts = [{"executable_path": executable, "args": CHROMIUM_FLAGS}] if Path(executable).exists() else []
    attempts.append({"args": CHROMIUM_FLAGS})
    for options in attempts:
        try:
            return playwright.chromium.launch(**options)
        except error_type:
            continue
    raise GeneratorError(
        "no Chromium found: install Debian's chromium (apt-get install chromium) or Playwright's "
        "(playwright install chromium)"
    )


def _route_offline(context: Any, url: str) -> str:
    from generator.testing.agents import find_agent  # noqa: PLC0415
    from generator.testing.network import Network, PendoHosts  # noqa: PLC0415

    host = (urlsplit(url).hostname or "").lower()
    agent = find_agent(None, Path.cwd())
    Network(agent, PendoHosts(), frozenset({host})).install(context)
    return agent.kind


def _from_config(config_path: Path | None) -> tuple[str, str | None]:
    if config_path is None:
        return "analytics", None
    from generator.config_loader import load_config  # noqa: PLC0415
    from generator.pipeline import build  # noqa: PLC0415

    config = load_config(config_path)
    with tempfile.TemporaryDirectory(prefix="segment-pendo-verify-") as folder:
        manifest = build(config_path, Path(folder))
    return config.source.resolved_global_key, str(manifest["files"][manifest["entry"]]["sri"])


def _console(report: Report, kind: str, text: str) -> None:
    if kind == "error":
        report.console_errors.append(text[:300])


def _beacon(request: Request, into: list[Any]) -> None:
    path = urlsplit(request.url).path
    if path.startswith("/data/ptm.gif"):
        try:
            into.extend(jzb_payloads(request.url, request.post_data))
        except ValueError:
            pass


def _script_body(response: Response, into: dict[str, bytes]) -> None:
    if SCRIPT_NAME.search(urlsplit(response.url).path) and response.ok:
        try:
            into[response.url] = response.body()
        except Exception:
            pass


def _settle(page: Page, wait_seconds: float) -> None:
    page.wait_for_timeout(int(wait_seconds * 1000 / 2))
    page.evaluate(
        "() => { try { if (window.pendo && pendo.isReady && pendo.isReady()) pendo.flushNow(true); } catch (e) {} }"
    )
    page.wait_for_timeout(int(wait_seconds * 1000 / 2))


def _read(page: Page, report: Report, scripts: dict[str, bytes], expected_sri: str | None) -> None:
    state = page.evaluate(READ_PAGE, [report.global_key, PLUGIN_NAME])
    report.analytics_js = (state["clientVersion"] or "unknown") if state["client"] else None
    report.plugin_registered = bool(state["plugin"])
    for script in state["scripts"]:
        src = script["src"]
        if SCRIPT_NAME.search(urlsplit(src).path) and report.script is None:
            report.script = src
            report.script_integrity = script["integrity"] or None
            if expected_sri is not None and src in scripts:
                report.script_matches_config = _sri(scripts[src]) == expected_sri
        if AGENT_SCRIPT.search(src) and report.agent is None:
            report.agent = src
    report.agent_version = state["agentVersion"] if state["ready"] else None
    report.visitor = state["visitor"]
    report.account = state["account"]
    report.csp_violations = list(state["csp"])


def _judge(report: Report, expectations: Expectations) -> None:
    failures = report.failures
    if report.analytics_js is None:
        failures.append(f"no analytics.js client at window.{report.global_key}")
    if report.script is not None and not report.plugin_registered and report.analytics_js is None:
        failures.append(
            f"the segment-pendo script found no analytics.js client at window.{report.global_key}: assign it "
            f"(window.{report.global_key} = analytics) or use the ES module's pendoPlugin"
        )
    if report.script_matches_config is False:
        failures.append("the segment-pendo script on the page is not the build of --config")
    if expectations.visitor is not None and report.visitor != expectations.visitor:
        failures.append(f"expected visitor {expectations.visitor!r}, Pendo has {report.visitor!r}")
    if expectations.account is not None and report.account != expectations.account:
        failures.append(f"expected account {expectations.account!r}, Pendo has {report.account!r}")


def _sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"
