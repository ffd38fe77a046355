"""Building-block guides the real Pendo agent shows, for the demo and the tests' local Pendo data host.

The agent probes `data/guide.gif/<apiKey>`, then asks `data/guide.json/<apiKey>?id=<n>&jzb=…` and shows
what the answer `{"id": n, "guides": [...], "lastGuideStepSeen": {...}}` lists (guide_list_answer). An
instant answer can make it show a guide's first step twice, so servers hold it back for HOLD_SECONDS.
"""

from __future__ import annotations

from typing import Any

HOLD_SECONDS = 0.5
# Without the agent's guide.css (an asset these tests do not serve) a lightbox has no position: put it on screen.
_ON_SCREEN = {"position": "fixed", "width": "500px", "z-index": "300000"}


def button(
    button_id: str,
    text: str,
    action: str,
    *,
    parameters: list[dict[str, Any]] | None = None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A guide button; its id starts with pendo-button, as the agent's click tracking expects."""
    return {
        "type": "button",
        "props": {"id": button_id, "class": "_pendo-button", **(attributes or {})},
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
        attributes={"data-pendo-poll-type": "yesNo", "data-pendo-poll-id": poll_id, "value": str(value)},
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
    parameters: list[dict[str, Any]] = [
        {"name": "snooze_duration", "type": "number", "value": ONE_DAY_MS},
        {"name": "time_unit", "type": "string", "value": "Day"},
    ]
    return guide(
        "guideReminder",
        "Reminder",
        [
            lightbox_step(
                "stepSnooze",
                "guideReminder",
                [button("pendo-button-snooze", "Later", "guideSnoozed", parameters=parameters)],
            )
        ],
    )


def guide_list_answer(request_id: str, guides: list[dict[str, Any]]) -> dict[str, Any]:
    """The guide.json answer to the request with this id (the agent ignores an answer with another id)."""
    answer_id: int | str = int(request_id) if request_id.isdigit() else request_id
    return {"id": answer_id, "guides": guides, "lastGuideStepSeen": {"isMultiStep": False}}
