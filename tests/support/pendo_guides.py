"""Building-block guides the real Pendo agent shows, served from the test's local Pendo data host.

The agent probes `data/guide.gif/<apiKey>` (FakeInternet answers it), then asks
`data/guide.json/<apiKey>?id=<n>&jzb=…` and shows what `{"id": n, "guides": [...], "lastGuideStepSeen": {...}}`
lists. An instant answer can make it show the first step twice, so the answer is held back a little.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import BrowserContext, Route

HOLD_SECONDS = 0.5
# Without the agent's guide.css (an asset these tests do not serve) a lightbox has no position: put it on screen.
_ON_SCREEN = {"position": "fixed", "width": "500px", "z-index": "300000"}


def button(
    button_id: str, text: str, action: str, parameters: list[dict[str, Any]] | None = None, **props: str
) -> dict[str, Any]:
    """A guide button; its id starts with pendo-button, as the agent's click tracking expects."""
    return {
        "type": "button",
        "props": {"id": button_id, "class": "_pendo-button", **props},
        "content": text,
        "actions": [
            {
                "action": action,
                "source": button_id,
                "destination": "EventRouter",
                "parameters": parameters or [],
                "uiMetadata": {},
                "eventType": "click",
            }
        ],
    }


def yes_no_button(button_id: str, text: str, poll_id: str, value: int) -> dict[str, Any]:
    """One answer of a yes/no poll: clicking it submits the poll and advances."""
    return button(
        button_id,
        text,
        "submitPoll",
        **{"data-pendo-poll-type": "yesNo", "data-pendo-poll-id": poll_id, "value": str(value)},
    )


def lightbox_step(step_id: str, guide_id: str, children: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A building-block lightbox step; its container id starts with pendo-g-<stepId>."""
    return {
        "id": step_id,
        "guideId": guide_id,
        "type": "lightbox",
        "attributes": {},
        **extra,
        "domJson": {
            "type": "div",
            "props": {"id": "pendo-base", "data-layout": "lightboxLayout", "style": _ON_SCREEN},
            "children": [
                {
                    "type": "div",
                    "props": {"id": f"pendo-g-{step_id}", "style": {"width": "300px", "height": "200px"}},
                    "children": [{"type": "div", "props": {"id": "pendo-guide-container"}, "children": children}],
                }
            ],
        },
    }


def guide(guide_id: str, name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A public building-block guide that launches by itself."""
    return {
        "id": guide_id,
        "name": name,
        "launchMethod": "auto",
        "isMultiStep": len(steps) > 1,
        "state": "public",
        "attributes": {"type": "building-block"},
        "steps": steps,
        **extra,
    }


def walkthrough() -> dict[str, Any]:
    """Three steps: Next; a yes/no poll; Dismiss."""
    return guide(
        "guideTour",
        "Welcome tour",
        [
            lightbox_step("stepNext", "guideTour", [button("pendo-button-next", "Next", "advanceGuide")]),
            lightbox_step(
                "stepPoll",
                "guideTour",
                [
                    yes_no_button("pendo-button-yes", "Yes", "pollHappy", 1),
                    yes_no_button("pendo-button-no", "No", "pollHappy", 0),
                ],
                pollIds=["pollHappy"],
            ),
            lightbox_step("stepDismiss", "guideTour", [button("pendo-button-dismiss", "Dismiss", "dismissGuide")]),
        ],
        polls=[{"id": "pollHappy", "question": "Happy?", "attributes": {"type": "YesNo"}, "numericResponses": True}],
    )


ONE_DAY_MS = 86_400_000


def snoozable() -> dict[str, Any]:
    """One step with a button that snoozes the guide for a day."""
    parameters = [
        {"name": "snooze_duration", "type": "number", "value": ONE_DAY_MS},
        {"name": "time_unit", "type": "string", "value": "Day"},
    ]
    return guide(
        "guideReminder",
        "Reminder",
        [
            lightbox_step(
                "stepSnooze", "guideReminder", [button("pendo-button-snooze", "Later", "guideSnoozed", parameters)]
            )
        ],
    )


@dataclass
class GuideHost:
    """Answers the agent's guide.json requests with the given guides (registered after FakeInternet, so it wins)."""

    context: BrowserContext
    guides: list[dict[str, Any]]
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.route("**/data/guide.json/**", self._answer)

    def _answer(self, route: Route) -> None:
        self.requests.append(route.request.url)
        request_id = parse_qs(urlsplit(route.request.url).query).get("id", ["0"])[0]
        time.sleep(HOLD_SECONDS)
        answer_id: int | str = int(request_id) if request_id.isdigit() else request_id
        body = {"id": answer_id, "guides": self.guides, "lastGuideStepSeen": {"isMultiStep": False}}
        route.fulfill(body=json.dumps(body), content_type="application/json")
