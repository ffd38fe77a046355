"""Compile the config's subscriptions and mappings into JavaScript expressions for the templates.

Every config value the expressions need goes into one LiteralTable, which config.js.jinja renders
as JSON; the expressions themselves hold only helper names, operators and `L[n]` references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generator.actions import ACTIONS
from generator.config import Config, KeyFilter, Subscription
from generator.fql import compile_fql, parse_fql
from generator.jsonpath import PathSegment
from generator.literals import LiteralTable
from generator.mapping import compile_mapping, mapping_path

EVENT = "e"


@dataclass(frozen=True)
class CompiledSubscription:
    """One enabled subscription, ready for its action's template."""

    index: int
    action: str
    label: str
    predicate: str
    fields: dict[str, str]
    allow_keys: str
    deny_keys: str
    account_traits: bool
    account_fallback: bool
    parent_path_in_account_data: str | None


@dataclass
class CompiledConfig:
    """What the templates render from."""

    config: Config
    literals: LiteralTable = field(default_factory=LiteralTable)
    subscriptions: list[CompiledSubscription] = field(default_factory=list)

    def for_action(self, action: str) -> list[CompiledSubscription]:
        """The enabled subscriptions that call one action, in config order."""
        return [subscription for subscription in self.subscriptions if subscription.action == action]

    def ref(self, value: Any) -> str:
        """JavaScript that reads a config value from the literal table."""
        return self.literals.ref(value)

    def key_filter(self, keys: KeyFilter) -> tuple[str, str]:
        """(allow, deny) references for a key filter; allow is `null` when every key may pass."""
        return self.ref(keys.allow), self.ref(keys.deny)


def compile_config(config: Config) -> CompiledConfig:
    """Compile every enabled subscription of the config."""
    compiled = CompiledConfig(config)
    for index, subscription in enumerate(config.subscriptions):
        if subscription.enabled:
            compiled.subscriptions.append(_compile_subscription(index, subscription, compiled))
    return compiled


def _compile_subscription(index: int, subscription: Subscription, compiled: CompiledConfig) -> CompiledSubscription:
    spec = ACTIONS[subscription.action]
    literals = compiled.literals
    predicate = compile_fql(parse_fql(subscription.fql), literals, EVENT)
    if subscription.events is not None:
        name_field = literals.ref(["event" if subscription.action == "track" else "name"])
        if subscription.events.allow is not None:
            predicate += f" && isOneOf(pathOf({EVENT}, {name_field}), {literals.ref(subscription.events.allow)})"
        if subscription.events.deny:
            predicate += f" && !isOneOf(pathOf({EVENT}, {name_field}), {literals.ref(subscription.events.deny)})"
    fields = {
        spec_field.name: compile_mapping(subscription.field_mapping(spec_field.name), literals, EVENT)
        for spec_field in spec.fields
    }
    allow_keys, deny_keys = compiled.key_filter(subscription.keys)
    parent_path = _parent_path_inside_account_data(subscription)
    return CompiledSubscription(
        index=index,
        action=subscription.action,
        # Labels are only read by debug logging; plain builds leave them out of the literal table.
        label=literals.ref(subscription.label) if compiled.config.build.debug else "",
        predicate=predicate,
        fields=fields,
        allow_keys=allow_keys,
        deny_keys=deny_keys,
        account_traits=subscription.account_traits,
        account_fallback=subscription.account_fallback,
        parent_path_in_account_data=literals.ref(parent_path) if parent_path is not None else None,
    )


def _parent_path_inside_account_data(subscription: Subscription) -> list[PathSegment] | None:
    """Where accountData holds parentAccountData, when both are plain paths and one is inside the other.

    Segment's group action removes it from the account metadata (at any depth), so the parent is sent
    once, as a parent.
    """
    if subscription.action != "group":
        return None
    account = subscription.field_mapping("accountData")
    parent = subscription.field_mapping("parentAccountData")
    if not (_is_plain_path(account) and _is_plain_path(parent)):
        return None
    account_path = mapping_path(account["@path"])
    parent_path = mapping_path(parent["@path"])
    if len(parent_path) > len(account_path) and parent_path[: len(account_path)] == account_path:
        return parent_path[len(account_path) :]
    return None


def _is_plain_path(mapping: Any) -> bool:
    return isinstance(mapping, dict) and set(mapping) == {"@path"} and isinstance(mapping["@path"], str)
