"""A shop page: the Segment snippet, the built script, and whatever the test's page code does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from playwright.sync_api import Page

from generator.paths import PROJECT_ROOT
from tests.support.fake_internet import FakeInternet, wait_until

SCRIPT_PATH = "/js/segment-pendo.min.js"
SNIPPET = PROJECT_ROOT / "site_demo" / "segment-snippet.js"


@dataclass
class Shop:
    """Opens pages on the fake shop and reads back what Segment and Pendo received."""

    page: Page
    internet: FakeInternet
    script: Path
    page_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def open(
        self,
        *,
        page_code: str = "",
        before_script: str = "",
        head_html: str = "",
        global_key: str = "analytics",
        with_snippet: bool = True,
        with_script: bool = True,
        script_before_snippet: bool = False,
        path: str = "/",
        wait_until: Literal["load", "domcontentloaded"] = "load",
        headers: dict[str, str] | None = None,
        inline_code: bool = True,
        script_attributes: str = "",
        snippet_attributes: str = "",
    ) -> None:
        """Load a page: snippet, then the script (or the other way round), then the page's own code."""
        script_url = self.internet.serve_file(SCRIPT_PATH, self.script)
        snippet_url = self.internet.serve_file("/js/segment-snippet.js", SNIPPET)
        snippet = ""
        if with_snippet:
            snippet = (
                f'<script src="{snippet_url}" data-write-key="{self.internet.write_key}" '
                f'data-global-key="{global_key}" {snippet_attributes}></script>'
            )
        if before_script:
            snippet += self._page_script("/js/before.js", before_script, inline_code, snippet_attributes)
        tag = f'<script src="{script_url}" {script_attributes}></script>' if with_script else ""
        head = head_html + (tag + snippet if script_before_snippet else snippet + tag)
        code = self._page_script("/js/page.js", page_code, inline_code, snippet_attributes) if page_code else ""
        html = f"<!doctype html><html><head><title>Shop</title>{head}{code}</head><body><h1>Shop</h1></body></html>"
        self.page.goto(self.internet.serve(path, html, headers=headers), wait_until=wait_until)

    def _page_script(self, path: str, code: str, inline: bool, attributes: str) -> str:
        if inline:
            return f"<script {attributes}>{code}</script>"
        return f'<script src="{self.internet.serve(path, code, "application/javascript")}" {attributes}></script>'

    def wait_for_segment(self, global_key: str = "analytics") -> None:
        """Until analytics.js 2.0 has loaded and replaced the snippet's stub."""
        self.page.wait_for_function("(key) => window[key] && window[key].initialized === true", arg=global_key)

    def wait_for_pendo(self) -> None:
        """Until the real agent has loaded and been initialized."""
        self.page.wait_for_function("() => window.pendo && pendo.isReady && pendo.isReady()", timeout=15_000)

    def run(self, code: str) -> Any:
        """Evaluate page code (an expression or statements wrapped in a function)."""
        return self.page.evaluate(code)

    def wait_until(self, condition: Any, timeout_ms: int = 10_000) -> None:
        """Poll a Python condition while letting the agent flush its batches."""
        wait_until(self.page, condition, timeout_ms=timeout_ms)

    def visitor(self) -> Any:
        """The agent's current visitor id."""
        return self.page.evaluate("() => (window.pendo && pendo.getVisitorId ? pendo.getVisitorId() : null)")

    def account(self) -> Any:
        """The agent's current account id."""
        return self.page.evaluate("() => (window.pendo && pendo.getAccountId ? pendo.getAccountId() : null)")


def js(value: Any) -> str:
    """A Python value as a JavaScript literal."""
    return json.dumps(value)
