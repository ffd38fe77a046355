"""The stub's call queue while the agent is away, on the module itself in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.support.compiled_js import static_exports_script

pytestmark = pytest.mark.browser


def test_the_queue_keeps_initialize_first_and_the_newest_500_calls(page: Page) -> None:
    page.set_content("<!doctype html><title>queue</title>")
    page.add_script_tag(content=static_exports_script("pendo-install.js", ["installPendoStub"]))
    queue = page.evaluate(
        """() => {
          const pendo = installPendoStub(window);
          pendo.track('Before Initialize');
          pendo.initialize({visitor: {id: 'v'}});
          for (let i = 0; i < 600; i += 1) installPendoStub(window).track('Event ' + i, {i: i});
          return pendo._q.map((call) => call[1] && call[1].visitor ? 'initialize' : call[1]);
        }"""
    )
    assert len(queue) == 500
    assert queue[0] == "initialize"
    assert queue[1] == "Event 101"
    assert queue[-1] == "Event 599"


def test_without_an_initialize_the_oldest_calls_go(page: Page) -> None:
    page.set_content("<!doctype html><title>queue</title>")
    page.add_script_tag(content=static_exports_script("pendo-install.js", ["installPendoStub"]))
    length = page.evaluate(
        """() => {
          for (let i = 0; i < 1200; i += 1) installPendoStub(window).track('Event ' + i);
          return [pendo._q.length, pendo._q[0][1]];
        }"""
    )
    assert length == [500, "Event 700"]
