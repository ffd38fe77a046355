"""`python -m generator webhook`: the Segment Webhooks (Actions) mapping for server-side track events.

It sends track events from mobile apps and servers to Pendo's Track Events API, with the same visitor and
account rules as the browser script built from the same config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from generator.config import Config
from generator.errors import GeneratorError
from generator.files import write_file
from generator.regions import track_events_url
from generator.webhook_audiences import audience_checklist, audience_subscriptions
from generator.webhook_metadata import metadata_subscriptions

SECRET_PLACEHOLDER = "<paste Pendo's Track Event Shared Secret here, in Segment>"
# "You can create up to 5 mappings" (Segment's Webhooks (Actions) documentation).
MAX_MAPPINGS_PER_DESTINATION = 5
INTEGRATION_KEY_PLACEHOLDER = "<paste a Pendo Integration Key with write access here, in Segment>"


# Pendo wants ms since the epoch as a number; Segment's timestamp is ISO 8601 text. Mapping-kit's only
# date arithmetic is Liquid's date filter, whose %s rounds to the nearest second (so "%s%L" is 1 s late
# whenever the milliseconds are 500 or more). Hence: drop the milliseconds, take whole seconds, append
# the milliseconds, and let @json decode the digits into a number (Liquid output is always text).
TIMESTAMP_MS = {
    "@json": {
        "mode": "decode",
        "value": {"@liquid": "{{ timestamp | date: '%Y-%m-%dT%H:%M:%S%:z' | date: '%s' }}{{ timestamp | date: '%L' }}"},
    }
}


def _path(path: str) -> dict[str, str]:
    return {"@path": path}


def visitor_id_mapping(config: Config) -> dict[str, Any]:
    """The browser script's visitor rule: the userId, else Pendo's anonymous prefix on the anonymousId."""
    anonymous = {"@template": "_PENDO_T_{{anonymousId}}"}
    if config.on_load.visitor_id == "user_id":
        return _path("$.userId")
    if config.on_load.visitor_id == "anonymous":
        return anonymous
    return {"@if": {"exists": _path("$.userId"), "then": _path("$.userId"), "else": anonymous}}


def data_mapping(config: Config) -> dict[str, Any]:
    """The request body mapping, field for field as Pendo's Track Events API wants it."""
    return {
        "type": "track",
        "event": _path("$.event"),
        "visitorId": visitor_id_mapping(config),
        "accountId": {
            "@if": {
                "exists": _path("$.context.groupId"),
                "then": _path("$.context.groupId"),
                "else": _path("$.properties.groupId"),
            }
        },
        "timestamp": TIMESTAMP_MS,
        "properties": _path("$.properties"),
        "context": {
            "ip": _path("$.context.ip"),
            "userAgent": _path("$.context.userAgent"),
            "url": _path("$.context.page.url"),
            "title": _path("$.context.page.title"),
        },
    }


def webhook_document(config: Config, *, include_secret: bool = False) -> dict[str, Any]:
    """The Webhooks (Actions) destination's subscriptions, as Segment stores subscriptions."""
    if config.webhook is None and config.metadata is None and config.audiences is None:
        raise GeneratorError(
            "the config has no [webhook] table (track events), [metadata] table (identify and group) "
            "or [audiences] table (Engage audiences); add one"
        )
    subscriptions: list[dict[str, Any]] = []
    if config.webhook is not None:
        secret = _secret(config.webhook.secret_env, SECRET_PLACEHOLDER, include_secret)
        subscriptions.append(
            {
                "name": config.webhook.name,
                "partnerAction": "send",
                "enabled": True,
                "subscribe": config.webhook.subscribe,
                "mapping": {
                    "url": track_events_url(config.pendo.region),
                    "method": "POST",
                    "headers": {"x-pendo-integration-key": secret, "content-type": "application/json"},
                    "data": data_mapping(config),
                    "enable_batching": False,
                },
            }
        )
    if config.metadata is not None:
        key = _secret(config.metadata.secret_env, INTEGRATION_KEY_PLACEHOLDER, include_secret)
        subscriptions.extend(metadata_subscriptions(config, key))
    subscriptions.extend(audience_subscriptions(config, include_secret=include_secret))
    return {"destination": "Webhooks (Actions)", "subscriptions": subscriptions}


def _secret(env: str, placeholder: str, include_secret: bool) -> str:
    if not include_secret:
        return placeholder
    secret = os.environ.get(env, "")
    if not secret:
        raise GeneratorError(f"--include-secret: {env} is not set in the environment")
    return secret


def checklist(config: Config) -> list[str]:
    """What the customer does in Segment and Pendo, in order."""
    steps = [
        "In Segment, add a Webhooks (Actions) destination to each mobile or server source that should reach Pendo."
    ]
    if config.webhook is not None:
        steps += [
            f"Add a mapping of the Send action with the track subscription and fields in this file (URL "
            f"{track_events_url(config.pendo.region)}).",
            "Put Pendo's Track Event Shared Secret (Pendo > Settings > Subscription Settings > your app) in its "
            "x-pendo-integration-key header; it is only written here with --include-secret.",
            "Send groupId in track properties (or context.groupId) so Pendo can attribute events to accounts.",
            "Send a test event from the mapping screen: Pendo answers 200, and the body's timestamp is a number "
            "(ms since the epoch, computed by Segment's Liquid date filter inside a JSON decode).",
        ]
    if config.metadata is not None:
        steps += metadata_checklist(config)
    steps += audience_checklist(config)
    if config.webhook is not None and config.webhook.covers_web_source:
        steps.append(
            "This destination also covers the web source: turn off track subscriptions in the browser script "
            "(or set [webhook] covers_web_source = false), or every web track event reaches Pendo twice."
        )
    return steps


def metadata_checklist(config: Config) -> list[str]:
    """The [metadata] part of the checklist."""
    document = metadata_subscriptions(config, "")
    total = len(document) + (1 if config.webhook is not None else 0)
    steps = [
        f"Add a mapping of the Send action for each identify and group subscription in this file ({len(document)}), "
        "with Enable Batching on as written: Segment then posts a batch as the JSON list Pendo's metadata API takes.",
        "Put a Pendo Integration Key with write access (Pendo > Settings > Integrations > Integration Keys; not the "
        "Track Event Shared Secret) in their x-pendo-integration-key header; only written here with --include-secret.",
        "Add every custom field first in Pendo > Settings > Data mappings: Pendo refuses values for custom fields "
        "it does not have.",
    ]
    if total > MAX_MAPPINGS_PER_DESTINATION:
        steps.append(
            f"That is {total} mappings; Segment's docs allow {MAX_MAPPINGS_PER_DESTINATION} per Webhooks (Actions) "
            "destination: add a second Webhooks (Actions) destination to the same sources for the rest."
        )
    return steps


def double_tracking_warning(config: Config) -> str | None:
    """A warning when web track events would reach Pendo through both the browser script and the webhook."""
    if config.webhook is None or not config.webhook.covers_web_source:
        return None
    if not any(subscription.enabled and subscription.action == "track" for subscription in config.subscriptions):
        return None
    return (
        "track events are sent both by the browser script and by the [webhook] destination, which covers the web "
        "source too: each web track event would reach Pendo twice; disable the browser's track subscriptions or "
        "set [webhook] covers_web_source = false"
    )


def write_webhook(config: Config, out: Path, *, include_secret: bool = False) -> dict[str, Any]:
    """Write the document (atomically) and return it."""
    document = webhook_document(config, include_secret=include_secret)
    write_file(out, (json.dumps(document, indent=2) + "\n").encode("utf-8"), private=include_secret)
    return document
