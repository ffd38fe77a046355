"""The config file's schema: every key, its type, its default and what it means.

Names mirror the settings of Segment's Pendo Web (Actions) destination, in snake_case.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from generator.regions import CDN_HOSTS, Region, agent_url

_API_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?$")

Target = Literal[
    "es2015", "es2016", "es2017", "es2018", "es2019", "es2020", "es2021", "es2022", "es2023", "es2024", "esnext"
]


class StrictModel(BaseModel):
    """A config table: unknown keys and loose types are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PendoSettings(StrictModel):
    """`[pendo]`: which subscription to send to and where its agent is served from."""

    api_key: str = Field(description="your Pendo subscription's API key (Pendo: Settings > Subscription Settings)")
    region: Region = Field(default="io", description="the Pendo region whose CDN serves the agent")
    content_host: str | None = Field(
        default=None,
        description="your CNAME host for Pendo's agent and content, e.g. pendo-static.example.com",
    )

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: str) -> str:
        if not _API_KEY.match(value):
            raise ValueError(
                f"{value!r} is not a Pendo API key; copy it from Pendo (letters, digits, '-' and '_', "
                "e.g. 1a2b3c4d-0000-4000-8000-123456789abc)"
            )
        return value

    @field_validator("content_host")
    @classmethod
    def _normalize_content_host(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        host = value
        scheme, separator, rest = value.partition("://")
        if separator:
            if scheme.lower() != "https":
                raise ValueError(f"{value!r} must be served over https; give the host alone, e.g. pendo.example.com")
            host = rest
        if host.endswith("/"):
            host = host[:-1]
        if not _HOST.match(host):
            raise ValueError(
                f"{value!r} is not a host name; give the CNAME host only, with no path, e.g. pendo-static.example.com"
            )
        return host.lower()

    @property
    def agent_host(self) -> str:
        """The host the agent script is loaded from: the CNAME when set, else the region's CDN."""
        return self.content_host or CDN_HOSTS[self.region]

    @property
    def agent_url(self) -> str:
        """The full URL of this subscription's agent script."""
        return agent_url(self.api_key, self.agent_host)


class BuildSettings(StrictModel):
    """`[build]`: how the script is bundled."""

    target: Target = Field(default="es2017", description="the oldest JavaScript version the script must run on")


class Config(StrictModel):
    """The whole config file."""

    pendo: PendoSettings = Field(description="the [pendo] table")
    build: BuildSettings = Field(default_factory=BuildSettings, description="the [build] table")
