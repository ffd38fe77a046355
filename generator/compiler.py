"""Compile the config's subscriptions and mappings into JavaScript expressions for the templates.

Every config value the expressions need goes into one LiteralTable, which config.js.jinja renders
as JSON; the expressions themselves hold only helper names, operators and `L[n]` references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from generator.actions import ACTIONS
from generator.config import Config, KeyFilter, Subscription
from generator.fql import compile_fql, parse_fql
from generator.jsonpath import PathSegment
from generator.literals import LiteralTable
from generator.mapping import compile_mapping, mapping_path

EVENT = "e"
UNDEFINED = "undefined"
# What each action's function in static/pendo-actions.js takes after send and its mapped fields.
LEADING_ARGUMENTS = {"identify": ["stored", EVENT], "group": ["stored", EVENT], "track": [], "page": []}


@dataclass(frozen=True)
class CompiledSubscription:
    """One enabled subscription, ready for its action's template."""

    index: int
    action: str
    label: str
    predicate: str
    fields: dict[str, str]
    trailing: list[str]

    def call_arguments(self, debug: bool) -> str:
        """The arguments after send of the action's call: leading ones, the mapped fields, then options.

        Options left at their defaults are left off the end. Debug builds pass the fields of `mapped`.
        """
        fields = [f"mapped.{name}" if debug else expression for name, expression in self.fields.items()]
        trailing = list(self.trailing)
        while trailing and trailing[-1] == UNDEFINED:
            trailing.pop()
        return ", ".join([*LEADING_ARGUMENTS[self.action], *fields, *trailing])


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

    def key_filter(self, keys: KeyFilter) -> list[str]:
        """[allow, deny] references for a key filter; `undefined` for one that lets every key pass."""
        return [
            UNDEFINED if keys.allow is None else self.ref(keys.allow),
            self.ref(keys.deny) if keys.deny else UNDEFINED,
        ]

    def key_arguments(self, keys: KeyFilter) -> str:
        """`, allow, deny` to pass after a value to pendoData, or nothing when every key may pass."""
        arguments = self.key_filter(keys)
        while arguments and arguments[-1] == UNDEFINED:
            arguments.pop()
        return "".join(f", {argument}" for argument in arguments)

    def actions_in_use(self) -> list[str]:
        """The actions with at least one enabled subscription, in a fixed order."""
        return [action for action in ("identify", "group", "track", "page") if self.for_action(action)]


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
    if subscription.subscribe is None:
        # The preset's `type = "<action>"`, as an own-key read with the type in the code.
        predicate = f'own({EVENT}, "type") === {json.dumps(subscription.action)}'
    else:
        predicate = compile_fql(parse_fql(subscription.fql), literals, EVENT)
    if subscription.events is not None:
        name = f"own({EVENT}, {json.dumps('event' if subscription.action == 'track' else 'name')})"
        if subscription.events.allow is not None:
            predicate += f" && isOneOf({name}, {literals.ref(subscription.events.allow)})"
        if subscription.events.deny:
            predicate += f" && !isOneOf({name}, {literals.ref(subscription.events.deny)})"
    fields = {
        spec_field.name: compile_mapping(
            subscription.field_mapping(spec_field.name),
            literals,
            EVENT,
            # Segment's preset mappings read fixed keys, which need no place in the literal table.
            inline_keys=subscription.field_mapping(spec_field.name) == spec_field.default,
        )
        for spec_field in spec.fields
    }
    trailing: list[str] = []
    if subscription.action == "group":
        parent_path = _parent_path_inside_account_data(subscription)
        if parent_path is None:
            trailing.append(UNDEFINED)
        elif parent_path != ["parentAccount"]:
            trailing.append(literals.ref(parent_path))
        else:
            trailing.append(json.dumps(parent_path))  # the presets' own path, no config value
    trailing += compiled.key_filter(subscription.keys)
    if subscription.action == "identify":
        trailing += ["true" if subscription.account_traits else UNDEFINED]
        trailing += [UNDEFINED if subscription.account_fallback else "true"]
    return CompiledSubscription(
        index=index,
        action=subscription.action,
        # Labels are only read by debug logging; plain builds leave them out of the literal table.
        label=literals.ref(subscription.label) if compiled.config.build.debug else "",
        predicate=predicate,
        fields=fields,
        trailing=trailing,
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
