"""Pendo guide and poll events sent back to Segment: what the render step adds when on.

Off (the default), nothing of it reaches the output: its template is not rendered and config.js
gets no value for it, so the scripts of configs without [guide_events] stay byte for byte the same.
"""

from __future__ import annotations

from typing import Any

from generator.config import Config
from generator.fql import evaluate_fql, parse_fql

TEMPLATE = "guide-events.js.jinja"


def template_wanted(template_name: str, config: Config) -> bool:
    """Whether a template belongs in this config's output: guide-events.js.jinja only when the feature is on."""
    return template_name != TEMPLATE or config.guide_events.enabled


def runtime_settings(config: Config) -> dict[str, Any]:
    """The config values the guide-event code reads from config.js; none when the feature is off."""
    settings = config.guide_events
    if not settings.enabled:
        return {}
    return {
        "guideEvents": {
            "track": settings.track.forwarded(),
            "allow": settings.keys.allow,
            "deny": settings.keys.deny,
        }
    }


def webhook_loop_warning(config: Config) -> str | None:
    """A warning when [webhook]'s subscription would send the guide events on to Pendo's Track Events API.

    The browser keeps them from every Pendo destination in analytics.js; a cloud destination filters by its
    own subscription, which Segment evaluates, so a match there is a loop this tool cannot close.
    """
    webhook = config.webhook
    if not config.guide_events.enabled or webhook is None or not webhook.covers_web_source:
        return None
    subscription = parse_fql(webhook.subscribe)
    names = config.guide_events.track.forwarded().values()
    looping = sorted({name for name in names if evaluate_fql(subscription, {"type": "track", "event": name})})
    if not looping:
        return None
    return (
        f"[webhook] subscribe selects the guide events {', '.join(map(repr, looping))}, so Segment would send them "
        "on to Pendo's Track Events API: exclude them there, e.g. subscribe = 'type = \"track\" and "
        '!match(event, "Pendo *")\''
    )
