"""Pendo guide and poll events back into Segment ([guide_events]), end to end.

Real Chromium, the real analytics.js 2.0 and the real Pendo agent showing real building-block guides
served by the test's local data host; the visitor clicks through them. What reaches Segment's API must
be exactly the configured track events, once each; nothing of it may reach Pendo as a track event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route

from generator.cli import main
from generator.config_loader import parse_config
from generator.demo import local_agent
from generator.demo.guides import ONE_DAY_MS, snoozable, walkthrough
from generator.guide_events import webhook_loop_warning
from generator.render import render_modules
from tests.conftest import DEFAULT_API_KEY, BuildScript, default_config
from tests.support.fake_internet import FakeInternet
from tests.support.pendo_guides import GuideHost
from tests.support.shop import Shop

ShopFactory = Callable[[Path], Shop]
ON = default_config() + "[guide_events]\nenabled = true\n"
EVERY_FEATURE = Path(__file__).parent / "configs" / "every-feature.toml"
TOUR = {"guide_id": "guideTour", "guide_name": "Welcome tour"}


def segment_tracks(internet: FakeInternet) -> list[tuple[str, dict[str, Any]]]:
    """(event, properties) of every track call that reached Segment's API."""
    return [(event["event"], event["properties"]) for event in internet.segment_events if event.get("type") == "track"]


def pendo_guide_events(internet: FakeInternet) -> list[tuple[str, dict[str, Any]]]:
    """(type, props) of every guide and poll event the agent sent to Pendo."""
    found: list[tuple[str, dict[str, Any]]] = []
    for request in internet.pendo_requests:
        if request.endpoint in ("guide.gif", "poll.gif"):
            for payload in request.payloads:
                found.extend(
                    (event["type"], event["props"]) for event in (payload if isinstance(payload, list) else [payload])
                )
    return found


def as_set(events: list[tuple[str, Any]]) -> list[str]:
    return sorted(json.dumps(event, sort_keys=True) for event in events)


def click_through(shop: Shop, *buttons: str) -> None:
    for button in buttons:
        shop.page.click(f"#{button}", timeout=10_000)


def walkthrough_events(seen_first: str = "Pendo Guide Seen") -> list[tuple[str, dict[str, Any]]]:
    clicked = "Pendo Guide Button Clicked"
    return [
        (seen_first, {**TOUR, "step_id": "stepNext", "reason": "auto"}),
        (
            clicked,
            {
                **TOUR,
                "step_id": "stepNext",
                "button_id": "pendo-button-next",
                "button_type": "BUTTON",
                "button_actions": ["advanceGuide"],
            },
        ),
        ("Pendo Guide Advanced", {**TOUR, "step_id": "stepNext", "destination_step_id": "stepPoll"}),
        (seen_first, {**TOUR, "step_id": "stepPoll", "reason": "continue"}),
        (
            clicked,
            {
                **TOUR,
                "step_id": "stepPoll",
                "button_id": "pendo-button-yes",
                "button_type": "BUTTON",
                "button_actions": ["submitPoll"],
            },
        ),
        (
            "Pendo Poll Answered",
            {**TOUR, "step_id": "stepPoll", "poll_id": "pollHappy", "poll_type": "YesNo", "poll_answer": 1},
        ),
        ("Pendo Guide Advanced", {**TOUR, "step_id": "stepPoll", "destination_step_id": "stepDismiss"}),
        (seen_first, {**TOUR, "step_id": "stepDismiss", "reason": "continue"}),
        (
            clicked,
            {
                **TOUR,
                "step_id": "stepDismiss",
                "button_id": "pendo-button-dismiss",
                "button_type": "BUTTON",
                "button_actions": ["dismissGuide"],
            },
        ),
        ("Pendo Guide Dismissed", {**TOUR, "step_id": "stepDismiss"}),
    ]


# Output when off -------------------------------------------------------------------------------------


def test_off_by_default_and_absent_from_the_output_when_off(build_script: BuildScript) -> None:
    plain = render_modules(parse_config({"pendo": {"api_key": DEFAULT_API_KEY}}))
    switched_off = render_modules(
        parse_config(
            {
                "pendo": {"api_key": DEFAULT_API_KEY},
                "guide_events": {"enabled": False, "keys": {"deny": ["guide_name"]}},
            }
        )
    )
    assert switched_off == plain
    assert "guide-events.js" not in plain and "guideEvents" not in plain["config.js"]
    off_script = build_script(default_config() + "[guide_events]\nenabled = false\n").read_bytes()
    assert off_script == build_script().read_bytes()
    assert b"addExtension" not in off_script
    every_feature = EVERY_FEATURE.read_text()
    every_feature_off = build_script(every_feature + "\n[guide_events]\nenabled = false\n").read_bytes()
    assert every_feature_off == build_script(every_feature).read_bytes()
    assert b"addExtension" not in every_feature_off


def test_config_values_reach_the_script_only_through_config_js() -> None:
    hostile = '</script><script>alert(1)</script>"\u2028'
    config = parse_config(
        {"pendo": {"api_key": DEFAULT_API_KEY}, "guide_events": {"enabled": True, "track": {"guideSeen": hostile}}}
    )
    modules = render_modules(config)
    assert "forwardGuideEvents(win, doc, null, null);" in modules["main.js"]
    assert not any(hostile in text for text in modules.values())
    assert "</script" not in modules["config.js"].lower()
    assert '"guideSeen": "\\u003c/script\\u003e' in modules["config.js"]


# With the real agent ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_walkthrough_poll_and_dismiss_reach_segment_once_each_and_never_pendo(
    build_script: BuildScript, shop_factory: ShopFactory, context: Any
) -> None:
    host = GuideHost(context, [walkthrough()])
    shop = shop_factory(build_script(ON))
    shop.open(page_code="analytics.identify('visitor-7'); analytics.track('Real Event', {n: 1});")
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-next", "pendo-button-yes", "pendo-button-dismiss")
    expected = walkthrough_events()
    shop.wait_until(lambda: len(segment_tracks(shop.internet)) >= len(expected) + 1 and shop.internet.tracks() != [])
    shop.page.wait_for_timeout(500)
    shop.wait_until(lambda: len(pendo_guide_events(shop.internet)) >= len(expected))

    forwarded = [event for event in segment_tracks(shop.internet) if event[0] != "Real Event"]
    assert as_set(forwarded) == as_set(expected)
    guide_calls = [e for e in shop.internet.segment_events if e.get("event", "").startswith("Pendo ")]
    assert {e["userId"] for e in guide_calls} == {"visitor-7"}
    assert all(e["integrations"]["Pendo Web (segment-pendo)"] is False for e in guide_calls)
    # The page's own track event still reaches Pendo; none of the guide events does.
    assert [name for name, _, _ in shop.internet.tracks()] == ["Real Event"]
    # What Segment got is what the agent itself reported to Pendo.
    assert sorted(t for t, _ in pendo_guide_events(shop.internet)) == sorted(
        ["guideSeen"] * 3 + ["guideActivity"] * 3 + ["guideAdvanced"] * 2 + ["pollResponse", "guideDismissed"]
    )
    assert host.requests


@pytest.mark.browser
@pytest.mark.parametrize("bundler", ["esbuild", "esbuild-py"])
def test_snoozed_guide(build_script: BuildScript, shop_factory: ShopFactory, context: Any, bundler: str) -> None:
    GuideHost(context, [snoozable()])
    shop = shop_factory(build_script(ON, bundler=bundler))
    shop.open(page_code="analytics.identify('visitor-8');")
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-snooze")
    reminder = {"guide_id": "guideReminder", "guide_name": "Reminder", "step_id": "stepSnooze"}
    expected = [
        ("Pendo Guide Seen", {**reminder, "reason": "auto"}),
        (
            "Pendo Guide Button Clicked",
            {
                **reminder,
                "button_id": "pendo-button-snooze",
                "button_type": "BUTTON",
                "button_actions": ["guideSnoozed"],
            },
        ),
        ("Pendo Guide Snoozed", {**reminder, "snooze_duration": ONE_DAY_MS}),
    ]
    shop.wait_until(lambda: len(segment_tracks(shop.internet)) >= len(expected))
    shop.page.wait_for_timeout(500)
    assert as_set(segment_tracks(shop.internet)) == as_set(expected)
    assert shop.internet.tracks() == []


@pytest.mark.browser
def test_names_keys_and_switched_off_events_follow_the_config(
    build_script: BuildScript, shop_factory: ShopFactory, context: Any
) -> None:
    GuideHost(context, [walkthrough()])
    config = ON + (
        'keys = { deny = ["guide_name", "reason"] }\n'
        "[guide_events.track]\n"
        'guideSeen = "Onboarding Step Viewed"\n'
        "guideActivity = false\n"
        "guideAdvanced = false\n"
        "[[subscriptions]]\naction = 'track'\nsubscribe = 'type = \"track\"'\n"
    )
    shop = shop_factory(build_script(config))
    shop.open(page_code="analytics.identify('visitor-9');")
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-next", "pendo-button-no", "pendo-button-dismiss")
    expected = [
        ("Onboarding Step Viewed", {"guide_id": "guideTour", "step_id": step})
        for step in ("stepNext", "stepPoll", "stepDismiss")
    ] + [
        (
            "Pendo Poll Answered",
            {
                "guide_id": "guideTour",
                "step_id": "stepPoll",
                "poll_id": "pollHappy",
                "poll_type": "YesNo",
                "poll_answer": 0,
            },
        ),
        ("Pendo Guide Dismissed", {"guide_id": "guideTour", "step_id": "stepDismiss"}),
    ]
    shop.wait_until(lambda: len(segment_tracks(shop.internet)) >= len(expected))
    shop.page.wait_for_timeout(800)
    assert as_set(segment_tracks(shop.internet)) == as_set(expected)
    assert shop.internet.tracks() == []


@pytest.mark.browser
def test_works_when_the_page_loaded_and_initialized_the_agent_itself(
    build_script: BuildScript, shop_factory: ShopFactory, context: Any
) -> None:
    GuideHost(context, [snoozable()])
    shop = shop_factory(build_script(ON))
    agent = f"https://cdn.pendo.io/agent/static/{DEFAULT_API_KEY}/pendo.js"
    shop.open(
        head_html=f'<script src="{agent}"></script>',
        before_script="pendo.initialize({visitor: {id: 'own-visitor'}});",
    )
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-snooze")
    shop.wait_until(lambda: len(segment_tracks(shop.internet)) >= 3)
    shop.page.wait_for_timeout(500)
    assert sorted(name for name, _ in segment_tracks(shop.internet)) == [
        "Pendo Guide Button Clicked",
        "Pendo Guide Seen",
        "Pendo Guide Snoozed",
    ]
    assert shop.internet.agent_requests == [agent]


def agent_without(context: Any, original: str, replacement: str) -> None:
    """Serve the real agent with one piece of its extension API changed, as a later version might."""

    def serve(route: Route) -> None:
        script = local_agent.agent_script(DEFAULT_API_KEY, "io")
        assert script.count(original) == 1, f"the agent no longer contains {original!r}"
        route.fulfill(body=script.replace(original, replacement), content_type="application/javascript")

    context.route("https://cdn.pendo.io/agent/static/**", serve)


CHANGED_AGENTS = {
    # (what the agent has, what replaces it, what a debug build logs or None)
    "no addExtension": ("pendo.addExtension = addExtension;", "", "guide events: this agent has no extension API"),
    "addExtension throws": (
        "pendo.addExtension = addExtension;",
        "pendo.addExtension = function () { throw new Error('changed'); };",
        None,
    ),
    "extensions rejected": ("'plugin', handlePlugin,", "'plugin-v2', handlePlugin,", None),
}


@pytest.mark.browser
@pytest.mark.parametrize("change", sorted(CHANGED_AGENTS))
def test_without_the_extension_api_nothing_is_sent_and_nothing_breaks(
    build_script: BuildScript, shop_factory: ShopFactory, context: Any, change: str
) -> None:
    original, replacement, logged = CHANGED_AGENTS[change]
    GuideHost(context, [snoozable()])
    agent_without(context, original, replacement)
    shop = shop_factory(build_script(ON + "[build]\ndebug = true\n"))
    shop.open(page_code="analytics.identify('visitor-10'); analytics.track('Real Event');")
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-snooze")
    shop.wait_until(lambda: "guideSnoozed" in [t for t, _ in pendo_guide_events(shop.internet)])
    shop.page.wait_for_timeout(300)
    assert [name for name, _ in segment_tracks(shop.internet)] == ["Real Event"]
    assert [name for name, _, _ in shop.internet.tracks()] == ["Real Event"]
    if logged is not None:
        kinds = shop.run("() => window.segmentPendoDebug.log.map((entry) => entry.kind)")
        assert any(logged in kind for kind in kinds)


@pytest.mark.browser
def test_consent_gates_guide_events_like_everything_else(
    build_script: BuildScript, shop_factory: ShopFactory, context: Any
) -> None:
    GuideHost(context, [walkthrough()])
    shop = shop_factory(build_script(ON + '[consent]\ncategories = ["analytics"]\n'))
    granted = "{consent: {categoryPreferences: {analytics: %s}}}"
    shop.open(page_code=f"analytics.identify('visitor-11', {{}}, {{context: {granted % 'true'}}});")
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-next")
    shop.wait_until(lambda: len(segment_tracks(shop.internet)) >= 4)
    shop.run(f"() => analytics.track('Consent Changed', {{}}, {{context: {granted % 'false'}}})")
    shop.page.wait_for_timeout(500)
    before = len(segment_tracks(shop.internet))
    click_through(shop, "pendo-button-yes")
    # The agent took the answer and moved on: the events happened, only the consent gate held them back.
    shop.page.wait_for_selector("#pendo-button-dismiss", timeout=10_000)
    shop.page.wait_for_timeout(1000)
    after = [name for name, _ in segment_tracks(shop.internet)[before:]]
    assert not any(name.startswith("Pendo ") for name in after), after


def test_build_warns_when_the_webhook_would_send_the_guide_events_on_to_pendo() -> None:
    def warning(webhook: dict[str, Any], enabled: bool = True) -> str | None:
        data = {"pendo": {"api_key": DEFAULT_API_KEY}, "guide_events": {"enabled": enabled}, "webhook": webhook}
        return webhook_loop_warning(parse_config(data))

    # The webhook destination hears the web source's events only with covers_web_source (default false).
    assert warning({}) is None
    assert warning({"covers_web_source": True}) == (
        "[webhook] subscribe selects the guide events 'Pendo Guide Advanced', 'Pendo Guide Button Clicked', "
        "'Pendo Guide Dismissed', 'Pendo Guide Seen', 'Pendo Guide Snoozed', 'Pendo Poll Answered', so Segment "
        "would send them on to Pendo's Track Events API: exclude them there, e.g. subscribe = "
        '\'type = "track" and !match(event, "Pendo *")\''
    )
    assert warning({"covers_web_source": True, "subscribe": 'type = "track" and !match(event, "Pendo *")'}) is None
    assert warning({"covers_web_source": True}, enabled=False) is None


def test_check_lists_the_guide_events_and_warns_about_the_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pendo.toml"
    config.write_text(ON + "[webhook]\ncovers_web_source = true\n[guide_events.track]\nguideActivity = false\n")
    assert main(["check", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "  [guide_events] Pendo guideSeen: analytics.track('Pendo Guide Seen')\n" in out
    assert "guideActivity" not in out
    assert "warning: [webhook] subscribe selects the guide events 'Pendo Guide Advanced', " in err


@pytest.mark.browser
def test_before_analytics_js_has_loaded_the_events_wait_in_the_snippets_queue(
    build_script: BuildScript, shop_factory: ShopFactory, context: Any
) -> None:
    GuideHost(context, [snoozable()])
    shop = shop_factory(build_script(ON))
    shop.internet.segment_behaviour = "abort"
    agent = f"https://cdn.pendo.io/agent/static/{DEFAULT_API_KEY}/pendo.js"
    shop.open(
        head_html=f'<script src="{agent}"></script>',
        before_script="pendo.initialize({visitor: {id: 'own-visitor'}});",
    )
    shop.wait_for_pendo()
    click_through(shop, "pendo-button-snooze")
    queued = "() => analytics.filter((call) => call[0] === 'track').map((call) => [call[1], call[3].integrations])"
    shop.wait_until(lambda: len(shop.run(queued)) >= 3)
    shop.page.wait_for_timeout(300)
    not_for_pendo = {"Pendo Web (segment-pendo)": False, "Pendo": False, "Pendo Web (Actions)": False}
    assert sorted(map(tuple, shop.run(queued))) == [
        ("Pendo Guide Button Clicked", not_for_pendo),
        ("Pendo Guide Seen", not_for_pendo),
        ("Pendo Guide Snoozed", not_for_pendo),
    ]
    assert segment_tracks(shop.internet) == []
