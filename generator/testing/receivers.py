"""The objects a test gets as `pendo` and `segment`: what each side received, and waiting assertions."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generator.testing import messages, observed
from generator.testing.network import Network, hosts_of

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

DEFAULT_TIMEOUT = 5.0
POLL_MS = 100
# Asks a ready agent to send what it has batched, so a test need not wait for the agent's own timer.
FLUSH = "() => { try { if (window.pendo && pendo.isReady && pendo.isReady() && pendo.flushNow) pendo.flushNow(true); } catch (e) {} }"  # noqa: E501


@dataclass
class _Waiter:
    context: BrowserContext

    def until(self, condition: Callable[[], bool], timeout: float, *, flush: bool = True) -> bool:
        """Poll until condition holds (True) or timeout seconds pass (False), letting the browser run meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return condition()
            self._pump(flush)

    def _pump(self, flush: bool) -> None:
        from playwright.sync_api import Error  # noqa: PLC0415  (only once a fixture is in use)

        pages = [page for page in self.context.pages if not page.is_closed()]
        for page in pages:
            if flush:
                try:
                    page.evaluate(FLUSH)
                except Error:
                    pass  # navigating or closing: the next round asks again
        if pages:
            try:
                pages[0].wait_for_timeout(POLL_MS)
                return
            except Error:
                pass
        time.sleep(POLL_MS / 1000)


class PendoReceiver:
    """What Pendo received from the test's pages (the `pendo` fixture)."""

    def __init__(self, network: Network, context: BrowserContext) -> None:
        """Read what network records for context."""
        self._network = network
        self._waiter = _Waiter(context)

    @property
    def agent(self) -> str:
        """Either "real" (npm's @pendo/agent served to the page) or "stand-in" (the kit's recording stand-in)."""
        return self._network.agent.kind

    @property
    def calls(self) -> list[observed.Call]:
        """Every call the page made on window.pendo, in order."""
        with self._network.recording.lock:
            return observed.calls_from(list(self._network.recording.calls))

    @property
    def visitor(self) -> observed.Identity:
        """The visitor's id and metadata as Pendo last recorded them."""
        return self._identities()[0]

    @property
    def account(self) -> observed.Identity:
        """The account's id and metadata as Pendo last recorded them."""
        return self._identities()[1]

    @property
    def events(self) -> list[observed.TrackEvent]:
        """Track events Pendo received, in order."""
        if self.agent == "real":
            return observed.tracks_from_events(self._agent_events())
        return observed.tracks_from_calls(self.calls)

    @property
    def blocked(self) -> list[str]:
        """Requests to unknown third-party hosts, aborted."""
        return list(self._network.recording.blocked)

    def expect_visitor(self, id: str, *, timeout: float = DEFAULT_TIMEOUT, **metadata: Any) -> None:
        """Wait until Pendo's visitor has this id and (at least) this metadata; else fail saying what it got."""
        self._expect_identity("visitor", id, metadata, timeout)

    def expect_account(self, id: str, *, timeout: float = DEFAULT_TIMEOUT, **metadata: Any) -> None:
        """Wait until Pendo's account has this id and (at least) this metadata; else fail saying what it got."""
        self._expect_identity("account", id, metadata, timeout)

    def expect_event(self, name: str, *, timeout: float = DEFAULT_TIMEOUT, **properties: Any) -> observed.TrackEvent:
        """Wait for a track event of this name with (at least) these properties; return it."""
        found: list[observed.TrackEvent] = []

        def arrived() -> bool:
            found[:] = [e for e in self.events if e.name == name and messages.matches(properties, e.properties)]
            return bool(found)

        if self._waiter.until(arrived, timeout):
            return found[0]
        same_name = [event for event in self.events if event.name == name]
        title = f"Pendo got no track event {name!r} with these properties within {timeout:g} s ({self.agent} agent)"
        if same_name:
            closest = min(same_name, key=lambda event: len(messages.differences(properties, event.properties)))
            raise AssertionError(messages.report(title, properties, closest.properties, self._notes()))
        others = sorted({event.name for event in self.events})
        notes = [f"track events Pendo got: {', '.join(map(repr, others)) or 'none'}", *self._notes()]
        raise AssertionError(messages.report(title, {"event": name, **properties}, None, notes))

    def expect_no_event(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Fail as soon as a track event of this name reaches Pendo within timeout seconds."""
        if self._waiter.until(lambda: any(event.name == name for event in self.events), timeout):
            event = next(event for event in self.events if event.name == name)
            raise AssertionError(
                f"Pendo got track event {name!r}, which the test expected it never to get\n"
                f"  properties: {messages.show(event.properties)}"
            )

    def _expect_identity(self, kind: str, expected_id: str, metadata: dict[str, Any], timeout: float) -> None:
        expected = {"id": expected_id, **metadata}

        def current() -> observed.Identity:
            return self.visitor if kind == "visitor" else self.account

        if self._waiter.until(lambda: messages.matches(expected, current().as_dict()), timeout):
            return
        got = current()
        title = f"Pendo's {kind} is not the expected one after {timeout:g} s ({self.agent} agent)"
        raise AssertionError(messages.report(title, expected, got.as_dict() if got.id else None, self._notes()))

    def _identities(self) -> tuple[observed.Identity, observed.Identity]:
        if self.agent == "real":
            return observed.identities_from_events(self._agent_events())
        return observed.identities_from_calls(self.calls)

    def _agent_events(self) -> list[dict[str, Any]]:
        with self._network.recording.lock:
            payloads = list(self._network.recording.pendo_payloads)
        return observed.agent_events(payloads)

    def _notes(self) -> list[str]:
        recording = self._network.recording
        notes = []
        if not recording.agent_requests:
            notes.append(
                "the page never requested Pendo's agent: is the segment-pendo <script> on the page, after "
                "analytics.js (or its snippet)?"
            )
        elif not any(call.method == "initialize" for call in self.calls):
            notes.append(
                "the agent loaded but pendo.initialize was never called: did analytics.js load, and does the "
                "script find it (window.analytics, or the ES module's pendoPlugin)?"
            )
        if recording.blocked:
            notes.append(f"aborted requests to unknown hosts: {', '.join(hosts_of(recording.blocked))}")
        return notes


class SegmentReceiver:
    """What Segment's API received from analytics.js on the test's pages (the `segment` fixture)."""

    def __init__(self, network: Network, context: BrowserContext) -> None:
        """Read what network records for context."""
        self._network = network
        self._waiter = _Waiter(context)

    @property
    def loaded(self) -> bool:
        """Whether a page loaded analytics.js from Segment's CDN."""
        return bool(self._network.recording.segment_loaded)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event analytics.js sent, in order (batches unpacked)."""
        with self._network.recording.lock:
            return observed.segment_events(list(self._network.recording.segment_bodies))

    def expect_event(
        self,
        type: str,
        name: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> dict[str, Any]:
        """Wait for an event of this type (and name: a track's event, a page's name) with these fields."""
        expected: dict[str, Any] = {"type": type, **fields}
        if name is not None:
            expected["event" if type == "track" else "name"] = name
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            found[:] = [event for event in self.events if messages.matches(expected, event)]
            return bool(found)

        if self._waiter.until(arrived, timeout, flush=False):
            return found[0]
        candidates = [event for event in self.events if event.get("type") == type]
        title = f"Segment got no {type} event like this within {timeout:g} s"
        notes = [] if self.loaded else ["no page loaded analytics.js from Segment's CDN"]
        if candidates:
            closest = min(candidates, key=lambda event: len(messages.differences(expected, event)))
            shown = {key: closest.get(key) for key in expected}
            raise AssertionError(messages.report(title, expected, shown, notes, who="Segment"))
        types = sorted({str(event.get("type")) for event in self.events})
        notes.append(f"event types Segment got: {', '.join(types) or 'none'}")
        raise AssertionError(messages.report(title, expected, None, notes, who="Segment"))
