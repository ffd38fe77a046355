"""The stored group id is read from analytics.js once and then followed: identify calls that name no account get
the group analytics.js holds now, after group calls (even ones kept from Pendo) and after reset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BuildScript, default_config
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

# What the identify preset sent: [visitor id, account id or null], one per identify call.
IDENTIFY_ACCOUNTS = """() => window.segmentPendoDebug.log
  .filter((entry) => entry.kind === 'subscription' && entry.detail.name === 'Send Identify Event')
  .map((entry) => entry.detail.call[1])
  .map((identity) => [identity.visitor.id, identity.account ? identity.account.id : null])"""


def test_identify_follows_the_stored_group_through_group_calls_and_reset(
    build_script: BuildScript, shop_factory: Callable[[Path], Shop]
) -> None:
    shop = shop_factory(build_script(default_config() + "[build]\ndebug = true\n"))
    shop.open()
    shop.wait_for_segment()
    steps: list[tuple[str, Any]] = [
        ("analytics.identify('u-1')", ["u-1", None]),
        ("analytics.group('g-1')", None),
        ("analytics.identify('u-1')", ["u-1", "g-1"]),
        # Kept from Pendo by the integrations object, but analytics.js still stores the group.
        ("analytics.group('g-2', {}, {integrations: {Pendo: false}})", None),
        ("analytics.identify('u-1')", ["u-1", "g-2"]),
        ("analytics.reset()", None),
        ("analytics.identify('u-2')", ["u-2", None]),
    ]
    expected = []
    for call, identify in steps:
        shop.run(f"() => {call}")
        if identify is not None:
            expected.append(identify)
            shop.wait_until(lambda: shop.run(IDENTIFY_ACCOUNTS) == expected)
        else:
            shop.page.wait_for_timeout(200)
