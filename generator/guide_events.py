"""Pendo guide and poll events sent back to Segment (issue #14): what the render step adds when on.

Off (the default), nothing of it reaches the output: its template is not rendered and config.js
gets no value for it, so the scripts of configs without [guide_events] stay byte for byte the same.
"""

from __future__ import annotations

from typing import Any

from generator.config import Config

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
