"""`[audiences]`: which Segment Engage audiences the relay keeps in step with which Pendo Segments.

Engage tells the relay when a visitor enters or leaves an audience; the relay adds or removes that visitor in the
audience's Pendo Segment, named here or created on first sight (its id then kept in the outbox, for every relay).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Engage audience keys are snake_case; a little more is let through, nothing that could break a URL or a log line.
_AUDIENCE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
# A Pendo segment id goes into a URL path.
_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_NAME = 200
# Pendo takes at most this many visitors in one segment request.
MAX_VISITORS = 1000
DEFAULT_INTEGRATION_KEY_ENV = "PENDO_INTEGRATION_KEY"

AudienceVisitorRule = Literal["user_id", "user_id_or_anonymous", "anonymous"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def is_audience_key(text: str) -> bool:
    """Whether text can be an Engage audience key (letters, digits, _ . -; at most 200)."""
    return bool(_AUDIENCE_KEY.fullmatch(text))


def _checked_keys(keys: list[str]) -> list[str]:
    bad = [key for key in keys if not _AUDIENCE_KEY.fullmatch(key)]
    if bad:
        raise ValueError(
            f"{bad[0]!r} is not an Engage audience key; give the key as Engage shows it "
            "(Engage > Audiences > the audience > Settings), e.g. high_value_users"
        )
    return keys


class AudienceSettings(_Strict):
    """`[audiences]`: Engage audience membership → Pendo Segments, through the relay (off unless present)."""

    allow: list[str] | None = Field(default=None, description="send only these audience keys (default: every one)")
    deny: list[str] = Field(default_factory=list, description="never send these audience keys")
    segments: dict[str, str] = Field(
        default_factory=dict,
        description='[audiences.segments] audience key = "Pendo segment id"; other audiences get a segment created',
    )
    names: dict[str, str] = Field(
        default_factory=dict,
        description="[audiences.names] audience key = name of the Pendo segment created for it (default: the key)",
    )
    create: bool = Field(
        default=True, description="create a Pendo segment for an audience [audiences.segments] does not name"
    )
    visitor_id: AudienceVisitorRule = Field(
        default="user_id",
        description="the Pendo visitor: user_id (Segment's rule for audiences), user_id_or_anonymous or anonymous",
    )
    max_visitors: int = Field(
        default=MAX_VISITORS, ge=1, le=MAX_VISITORS, description="visitors per request to Pendo (at most 1,000)"
    )
    relay_url: str | None = Field(
        default=None,
        description="the relay's public https address, for the Webhooks (Actions) subscription `webhook` writes",
    )

    @field_validator("allow")
    @classmethod
    def _check_allow(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _checked_keys(value)

    @field_validator("deny")
    @classmethod
    def _check_deny(cls, value: list[str]) -> list[str]:
        return _checked_keys(value)

    @field_validator("segments")
    @classmethod
    def _check_segments(cls, value: dict[str, str]) -> dict[str, str]:
        _checked_keys(list(value))
        for key, segment_id in value.items():
            if not _SEGMENT_ID.fullmatch(segment_id):
                raise ValueError(
                    f"{key} = {segment_id!r} is not a Pendo segment id; copy it from the segment's URL in Pendo "
                    "(letters, digits, - and _), or leave the audience out to have the relay create its segment"
                )
        repeated = sorted({segment for segment in value.values() if list(value.values()).count(segment) > 1})
        if repeated:
            raise ValueError(
                f"segment {repeated[0]!r} is given to more than one audience; each audience needs its own segment"
            )
        return value

    @field_validator("names")
    @classmethod
    def _check_names(cls, value: dict[str, str]) -> dict[str, str]:
        _checked_keys(list(value))
        for key, name in value.items():
            if not name.strip() or len(name) > _MAX_NAME:
                raise ValueError(f"{key} = {name!r}: a segment name must be 1 to {_MAX_NAME} characters")
        return value

    @field_validator("relay_url")
    @classmethod
    def _check_relay_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s?#]*)?", value):
            raise ValueError(
                f"{value!r} is not the relay's https address; give it as https://relay.example.com "
                "(Segment sends audience events there)"
            )
        return value.rstrip("/") if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> AudienceSettings:
        both = sorted(set(self.allow or []) & set(self.deny))
        if both:
            raise ValueError(f"{both[0]!r} is in both allow and deny; keep it in one")
        for table in ("segments", "names"):
            for key in getattr(self, table):
                if not self.allowed(key):
                    raise ValueError(
                        f"[audiences.{table}] names {key!r}, which allow/deny keeps out; "
                        "remove it there or let it through"
                    )
        return self

    def sends(self, key: str) -> bool:
        """Whether the audience with this key goes to Pendo (without create, only those with a segment here)."""
        return self.allowed(key) and (self.create or key in self.segments)

    def allowed(self, key: str) -> bool:
        """Whether allow and deny let the audience through."""
        return (self.allow is None or key in self.allow) and key not in self.deny

    def segment_name(self, key: str) -> str:
        """The name a segment created for this audience gets."""
        return self.names.get(key, key)

    def rules(self) -> list[str]:
        """The rules in force, one line each (for `check`)."""
        which = "every audience" if self.allow is None else "audiences " + ", ".join(self.allow)
        if not self.create:
            which = "audiences " + ", ".join(key for key in self.segments if self.allowed(key))
        except_ = " except " + ", ".join(self.deny) if self.deny and self.create else ""
        lines = [f"{which}{except_} → Pendo Segments"]
        lines += [f"{key} → segment {segment}" for key, segment in sorted(self.segments.items())]
        if self.create:
            lines.append("any other audience → a Pendo segment created on first sight, named after it")
        else:
            lines.append("any other audience → not sent (create = false)")
        lines.append(f"visitor: {self.visitor_id}; at most {self.max_visitors} visitors a request")
        return lines
