"""Pendo regions: the CDN host that serves each subscription's agent.

Hosts follow `dist/servers.json` of the npm package `@pendo/agent` (key `assetHost`).
"""

from __future__ import annotations

from typing import Literal, get_args

Region = Literal["io", "eu", "us1", "jp", "au", "gov"]

CDN_HOSTS: dict[str, str] = {
    "io": "cdn.pendo.io",
    "eu": "cdn.eu.pendo.io",
    "us1": "us1.cdn.pendo.io",
    "jp": "cdn.jpn.pendo.io",
    "au": "cdn.au.pendo.io",
    "gov": "cdn.gov.pendo.io",
}

# Pendo's app hosts, which take the Track Events API (`dist/servers.json`, key `data`).
APP_HOSTS: dict[str, str] = {
    "io": "app.pendo.io",
    "eu": "app.eu.pendo.io",
    "us1": "us1.app.pendo.io",
    "jp": "app.jpn.pendo.io",
    "au": "app.au.pendo.io",
    "gov": "app.gov.pendo.io",
}

# Segment's Pendo Web (Actions) stores the region as the CDN's full URL.
REGION_BY_SEGMENT_URL: dict[str, str] = {f"https://{host}": name for name, host in CDN_HOSTS.items()}

REGIONS: tuple[str, ...] = get_args(Region)


def agent_url(api_key: str, host: str) -> str:
    """Where the subscription's agent script lives on a CDN or CNAME host."""
    return f"https://{host}/agent/static/{api_key}/pendo.js"


def track_events_url(region: str) -> str:
    """Pendo's Track Events API for a region."""
    return f"https://{APP_HOSTS[region]}/data/track"
