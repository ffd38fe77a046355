"""The Webhooks (Actions) subscription that sends Engage's audience calls to the relay, which keeps Pendo Segments.

Pendo's segment API needs the segment's id in the URL and an add or a remove by membership, which a webhook
mapping cannot choose per event, and the order of a visitor's calls must hold; so the calls go to the relay as
they are (batched, the whole event), and the relay does the rest.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from generator.config import Config
from generator.errors import GeneratorError

RELAY_SECRET_ENV = "RELAY_SHARED_SECRET"
RELAY_SECRET_PLACEHOLDER = (
    "<Basic, then base64 of the relay's shared secret and a colon; written with --include-secret>"
)
# Both shapes Engage sends membership in, and nothing else.
AUDIENCE_SUBSCRIBE = (
    '(type = "identify" or event = "Audience Entered" or event = "Audience Exited") '
    'and context.personas.computation_class = "audience"'
)
BATCH_SIZE = 500


def audience_subscriptions(config: Config, *, include_secret: bool = False) -> list[dict[str, Any]]:
    """The subscription for the config's [audiences] (none without that table)."""
    settings = config.audiences
    if settings is None:
        return []
    if settings.relay_url is None:
        raise GeneratorError(
            "[audiences] relay_url is not set; add the relay's public address, e.g. "
            'relay_url = "https://relay.example.com", for Segment to send audience calls to'
        )
    return [
        {
            "name": "Send Engage audience membership to the relay (Pendo Segments)",
            "partnerAction": "send",
            "enabled": True,
            "subscribe": AUDIENCE_SUBSCRIBE,
            "mapping": {
                "url": f"{settings.relay_url}/v1/batch",
                "method": "POST",
                "headers": {"authorization": _authorization(include_secret), "content-type": "application/json"},
                "data": {"@path": "$."},
                "enable_batching": True,
                "batch_size": BATCH_SIZE,
            },
        }
    ]


def _authorization(include_secret: bool) -> str:
    if not include_secret:
        return RELAY_SECRET_PLACEHOLDER
    secret = os.environ.get(RELAY_SECRET_ENV, "")
    if not secret:
        raise GeneratorError(f"--include-secret: {RELAY_SECRET_ENV} is not set in the environment")
    return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()


def audience_checklist(config: Config) -> list[str]:
    """The [audiences] part of the checklist."""
    if config.audiences is None:
        return []
    return [
        "In Segment Engage, connect each audience that should reach Pendo to this Webhooks (Actions) destination "
        "(Engage > the audience > Destinations), sending identify calls, or track calls (Audience Entered / "
        "Audience Exited); the relay reads either.",
        f"Add a mapping of the Send action with the audience subscription in this file, batching on; it posts to "
        f"{config.audiences.relay_url}/v1/batch. Put 'Basic ' and the base64 of the relay's shared secret "
        f"followed by a colon ({RELAY_SECRET_ENV}) in its authorization header; only written here with "
        "--include-secret.",
        "Run the relay with the Integration Key with write access in its environment (PENDO_INTEGRATION_KEY, or "
        "the variable [metadata] secret_env names); it creates a Pendo segment for each audience "
        "[audiences.segments] does not name, once, and shows them with `segment-pendo audiences list`.",
    ]
