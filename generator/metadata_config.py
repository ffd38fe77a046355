"""`[metadata]`: which Segment traits become which Pendo visitor, account and parent account fields.

Server and mobile identify and group calls reach Pendo's metadata API (through the relay, or through Segment's
Webhooks (Actions) destination) with the fields chosen here, written with the browser script's mapping directives.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from generator.jsonpath import PathSyntaxError
from generator.mapping import MappingError, check_mapping, mapping_path

# Pendo's supported metadata field names: letters, digits and _, not starting with a digit.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_KEY = re.compile(r"^[A-Za-z_$][\w$-]*$")

FieldGroup = Literal["agent", "custom"]
FIELD_GROUPS: tuple[FieldGroup, ...] = ("agent", "custom")
# Pendo's metadata API takes at most a few MB per request; the relay stays well below.
MIN_BODY_BYTES = 16 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ROWS = 4000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _checked_fields(value: dict[str, Any], _info: ValidationInfo) -> dict[str, Any]:
    problems: list[str] = []
    for name, mapping in value.items():
        if not _FIELD_NAME.fullmatch(name):
            problems.append(
                f"{name!r} is not a Pendo field name (letters, digits and _, not starting with a digit, "
                "at most 64); rename it as it is in Pendo > Settings > Data mappings"
            )
            continue
        try:
            check_mapping(mapping, name)
        except MappingError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("; ".join(problems))
    return value


class FieldTables(_Strict):
    """The Pendo fields of one kind of record, by field group: `agent` (created on first write) or `custom`."""

    agent: dict[str, Any] = Field(
        default_factory=dict, description='agent fields: Pendo field = Segment field, e.g. email = { "@path" = ... }'
    )
    custom: dict[str, Any] = Field(
        default_factory=dict, description="custom fields (they must exist in Pendo > Settings > Data mappings)"
    )

    @field_validator("agent", "custom")
    @classmethod
    def _check_fields(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return _checked_fields(value, info)

    @model_validator(mode="after")
    def _one_group_per_field(self) -> FieldTables:
        both = sorted(set(self.agent) & set(self.custom))
        if both:
            raise ValueError(f"{', '.join(both)} is both an agent and a custom field; keep it in one group")
        return self

    def by_group(self) -> dict[FieldGroup, dict[str, Any]]:
        """The non-empty groups and their field mappings."""
        groups: dict[FieldGroup, dict[str, Any]] = {"agent": self.agent, "custom": self.custom}
        return {group: fields for group, fields in groups.items() if fields}


class ParentAccountTables(FieldTables):
    """Parent account fields, and where the parent account's id comes from (as Segment's group action reads it)."""

    id: dict[str, str] = Field(
        default_factory=lambda: {"@path": "$.traits.parentAccount.id"},
        description='the parent account id in a group call, a @path such as { "@path" = "$.traits.parentAccount.id" }',
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: dict[str, str]) -> dict[str, str]:
        # A plain path, so Segment's mapping engine can also write "<parent id>::<account id>" (as a template).
        problem = f'{value!r} is not a plain path; give it as {{ "@path" = "$.traits.parentAccount.id" }}'
        if list(value) != ["@path"]:
            raise ValueError(problem)
        try:
            segments = mapping_path(value["@path"])
        except PathSyntaxError as error:
            raise ValueError(str(error)) from None
        if not segments or not all(isinstance(part, str) and _TEMPLATE_KEY.fullmatch(part) for part in segments):
            raise ValueError(problem)
        return value

    @property
    def id_segments(self) -> list[str]:
        """The id's path as dotted keys (e.g. traits, parentAccount, id)."""
        return [str(part) for part in mapping_path(self.id["@path"])]


class MetadataSettings(_Strict):
    """`[metadata]`: identify → visitor fields, group → account (and parent account) fields in Pendo."""

    secret_env: str = Field(
        default="PENDO_INTEGRATION_KEY",
        description="environment variable holding a Pendo Integration Key with write access",
    )
    create: bool = Field(default=True, description="create visitors and accounts Pendo does not know yet")
    window_seconds: float = Field(
        default=5.0, ge=0, le=3600, description="updates of one visitor or account within this time are merged"
    )
    max_rows: int = Field(default=500, ge=1, le=MAX_ROWS, description="visitors or accounts per request")
    max_bytes: int = Field(
        default=1024 * 1024, ge=MIN_BODY_BYTES, le=MAX_BODY_BYTES, description="JSON bytes per request body"
    )
    visitor: FieldTables = Field(default_factory=FieldTables, description="the [metadata.visitor] fields")
    account: FieldTables = Field(default_factory=FieldTables, description="the [metadata.account] fields")
    parent_account: ParentAccountTables | None = Field(
        default=None, description="the [metadata.parent_account] fields (Pendo's parent account feature)"
    )

    @field_validator("window_seconds", mode="before")
    @classmethod
    def _integer_seconds(cls, value: Any) -> Any:
        # TOML writes 5 and 5.0 differently; both mean five seconds.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _maps_something(self) -> MetadataSettings:
        tables = [self.visitor, self.account, *([self.parent_account] if self.parent_account else [])]
        if not any(table.by_group() for table in tables):
            raise ValueError(
                'maps no field; add one, e.g. [metadata.visitor.agent] email = { "@path" = "$.traits.email" }'
            )
        return self
