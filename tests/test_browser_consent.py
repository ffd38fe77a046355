"""The consent gate with Segment's real consent tools: @segment/analytics-consent-tools' createWrapper around
@segment/analytics-next, in a site's own bundle, with the real Pendo agent. Real Chromium, nothing leaves the machine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.bundle import find_esbuild
from generator.paths import NODE_MODULES
from tests.conftest import BuildScript, default_config
from tests.support.shop import Shop

pytestmark = pytest.mark.browser

ShopFactory = Callable[[Path], Shop]

CONSENT = """
[consent]
categories = ["analytics"]
"""
PREFERENCE_EVENT = "Segment Consent Preference Updated"

# A site that asks for consent the way Segment documents it: createWrapper with the site's consent manager
# (here a variable and a callback list standing in for a CMP), around analytics.js from npm.
CONSENT_APP = """
import { AnalyticsBrowser } from '@segment/analytics-next';
import { createWrapper } from '@segment/analytics-consent-tools';

let categories = { analytics: window.initiallyGranted === true, advertising: true };
const listeners = [];
const withConsentManager = createWrapper({
  getCategories: () => categories,
  registerOnConsentChanged: (onChange) => listeners.push(onChange),
});
// What the consent banner does when the visitor changes their choice.
window.chooseAnalytics = (granted) => {
  categories = { ...categories, analytics: granted };
  listeners.forEach((onChange) => onChange(categories));
};
window.analytics = withConsentManager(new AnalyticsBrowser());
window.analytics.load({ writeKey: 'wk_test_1234' });
"""


def segment_track_names(shop: Shop) -> list[str]:
    """Names of the track events Segment's API received."""
    events = [item for body in shop.internet.segment_events for item in body.get("batch", [body])]
    return [event["event"] for event in events if event.get("type") == "track"]


@pytest.fixture(scope="session")
def consent_app_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's bundle, built with the pinned esbuild from the pinned npm packages."""
    work = tmp_path_factory.mktemp("consent-app")
    (work / "app.js").write_text(CONSENT_APP)
    binary = find_esbuild()
    assert binary is not None, "run `npm ci`: the esbuild binary is a pinned npm dependency"
    subprocess.run(
        [str(binary), "app.js", "--bundle", "--format=iife", "--target=es2017", "--outfile=bundle.js"],
        cwd=work,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        check=True,
        capture_output=True,
    )
    return work / "bundle.js"


@pytest.fixture
def open_consent_shop(
    build_script: BuildScript, shop_factory: ShopFactory, consent_app_bundle: Path
) -> Callable[..., Shop]:
    def _open(extra_toml: str = CONSENT, *, granted: bool) -> Shop:
        shop = shop_factory(build_script(default_config() + extra_toml))
        app_url = shop.internet.serve_file("/js/app.js", consent_app_bundle)
        shop.open(
            with_snippet=False,
            head_html=f"<script>window.initiallyGranted = {'true' if granted else 'false'};</script>"
            f'<script src="{app_url}"></script>',
        )
        # window.analytics is the npm package's AnalyticsBrowser; it holds the loaded instance once loaded.
        shop.page.wait_for_function("() => analytics.instance && analytics.instance.initialized === true")
        return shop

    return _open


def test_an_identify_made_while_consent_was_revoked_reaches_pendo_on_the_next_grant(
    open_consent_shop: Callable[..., Shop],
) -> None:
    shop = open_consent_shop(granted=True)
    shop.run("() => analytics.track('While Anonymous', {})")
    shop.wait_for_pendo()
    shop.wait_until(lambda: [name for name, _, _ in shop.internet.tracks()] == ["While Anonymous"])
    anonymous_visitor = shop.internet.tracks()[0][2]
    assert anonymous_visitor.startswith("_PENDO_T_")

    shop.run("() => chooseAnalytics(false)")
    shop.page.wait_for_function("() => pendo.isSendingEvents() === false")
    shop.run("() => analytics.identify('u-2', {plan: 'pro'})")
    shop.run("() => analytics.track('While Revoked', {})")
    shop.page.wait_for_timeout(300)
    shop.run("() => chooseAnalytics(true)")
    shop.run("() => analytics.track('After Regrant', {})")
    shop.wait_until(lambda: any(name == "After Regrant" for name, _, _ in shop.internet.tracks()))

    tracks = shop.internet.tracks()
    assert ("After Regrant", {}, "u-2") in tracks
    assert shop.visitor() == "u-2"
    names = [name for name, _, _ in tracks]
    assert "While Revoked" not in names
    assert PREFERENCE_EVENT not in names


def test_the_consent_wrappers_preference_events_stay_out_of_pendo_by_default(
    open_consent_shop: Callable[..., Shop],
) -> None:
    shop = open_consent_shop(granted=True)
    shop.run("() => analytics.track('Before', {})")
    shop.wait_for_pendo()
    shop.run("() => { chooseAnalytics(true); analytics.track('After', {}); }")
    shop.wait_until(lambda: any(name == "After" for name, _, _ in shop.internet.tracks()))
    shop.page.wait_for_timeout(300)
    shop.run("() => pendo.flushNow(true)")
    shop.page.wait_for_timeout(300)
    assert [name for name, _, _ in shop.internet.tracks()] == ["Before", "After"]
    # Segment itself still gets the preference event: only Pendo is spared it.
    shop.wait_until(lambda: PREFERENCE_EVENT in segment_track_names(shop))


def test_a_config_can_forward_the_preference_events(open_consent_shop: Callable[..., Shop]) -> None:
    shop = open_consent_shop(CONSENT + "forward_preference_events = true\n", granted=False)
    shop.run("() => analytics.track('Before Consent', {})")
    shop.page.wait_for_timeout(500)
    assert shop.internet.agent_requests == []
    shop.run("() => { chooseAnalytics(true); analytics.track('After Consent', {}); }")
    shop.wait_for_pendo()
    shop.wait_until(lambda: any(name == "After Consent" for name, _, _ in shop.internet.tracks()))
    names = [name for name, _, _ in shop.internet.tracks()]
    assert names == [PREFERENCE_EVENT, "After Consent"]
