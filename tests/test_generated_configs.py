"""Property-based: every valid config builds, its script parses, and it runs in the page without errors."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from generator.config_loader import parse_config
from tests.conftest import BuildScript
from tests.support.config_strategies import config_texts
from tests.support.shop import Shop

EXAMPLES = 20


@settings(max_examples=200, deadline=None)
@given(config_texts())
def test_every_generated_config_is_valid(config_text: str) -> None:
    parse_config(tomllib.loads(config_text))


@pytest.mark.browser
# No shrinking in the browser: each shrink step reloads a page, and CI time is bounded; the failing
# example is still reported as generated.
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config_text=config_texts())
def test_every_generated_config_builds_and_runs_without_page_errors(
    config_text: str, build_script: BuildScript, shop_factory: Callable[[Path], Shop]
) -> None:
    shop = shop_factory(build_script(config_text))
    shop.internet.agent_behaviour = "hang"
    shop.open(
        wait_until="domcontentloaded",
        page_code="""
      analytics.identify('generated-user', {plan: 'pro', email: 'a@b.c'});
      analytics.group('generated-group', {seats: 3, parentAccount: {id: 'p'}});
      analytics.track('Generated Event', {n: 1, nested: {a: [1, 2]}});
      analytics.page('Generated Page', {virtual: true, url: 'https://shop.example/generated'});
    """,
    )
    shop.wait_for_segment()
    shop.page.wait_for_timeout(150)
    shop.run("() => analytics.reset()")
    shop.page.wait_for_timeout(50)
    assert shop.page_errors == []
