"""The Webhooks (Actions) subscriptions that write identify and group traits to Pendo's metadata API.

One subscription per record kind and field group, each with batching on: Segment's Send action then posts the
mapped `data` of a batch as a JSON list, which is exactly the metadata API's bulk body. The rows are the relay's
(`generator.relay.metadata`), field for field, for the same config.
"""

from __future__ import annotations

from typing import Any

from generator.config import Config
from generator.metadata_config import FieldTables
from generator.relay.metadata import Destination, Kind, app_base_url, metadata_url

ACTION_OF_KIND = {"visitor": "identify", "account": "group", "parentAccount": "group"}
RECORD_NAMES = {"visitor": "visitor", "account": "account", "parentAccount": "parent account"}


def metadata_subscriptions(config: Config, integration_key: str) -> list[dict[str, Any]]:
    """The subscriptions for the config's [metadata] fields (none without that table)."""
    settings = config.metadata
    if settings is None:
        return []
    tables: list[tuple[Kind, FieldTables, Any]] = [("visitor", settings.visitor, visitor_id_text(config))]
    account_id: Any = _text_of("groupId")
    parent = settings.parent_account
    if parent is not None:
        parent_key = ".".join(parent.id_segments)
        tables.append(("parentAccount", parent, _text_of(parent_key)))
        # Pendo's agent names an account under a parent "<parent id>::<account id>", as the relay does.
        account_id = {
            "@if": {
                "exists": {"@path": f"$.{parent_key}"},
                "then": {"@template": f"{{{{{parent_key}}}}}::{{{{groupId}}}}"},
                "else": account_id,
            }
        }
    tables.insert(1, ("account", settings.account, account_id))
    subscriptions = []
    for kind, fields_by_kind, record_id in tables:
        for group, fields in fields_by_kind.by_group().items():
            destination = Destination(kind, group)
            action = ACTION_OF_KIND[kind]
            subscriptions.append(
                {
                    "name": f"Send {action} traits to Pendo {RECORD_NAMES[kind]} {group} fields",
                    "partnerAction": "send",
                    "enabled": True,
                    "subscribe": f'type = "{action}"',
                    "mapping": {
                        "url": metadata_url(app_base_url(config.pendo.region), destination, create=settings.create),
                        "method": "POST",
                        "headers": {"x-pendo-integration-key": integration_key, "content-type": "application/json"},
                        "data": {destination.id_key: record_id, "values": _values(fields)},
                        "enable_batching": True,
                        "batch_size": settings.max_rows,
                    },
                }
            )
    return subscriptions


def visitor_id_text(config: Config) -> dict[str, Any]:
    """The relay's visitor rule, with ids as text as the relay sends them (a numeric userId becomes "42")."""
    anonymous = {"@template": "_PENDO_T_{{anonymousId}}"}
    if config.on_load.visitor_id == "user_id":
        return _text_of("userId")
    if config.on_load.visitor_id == "anonymous":
        return anonymous
    return {"@if": {"exists": {"@path": "$.userId"}, "then": {"@template": "{{userId}}"}, "else": anonymous}}


def _text_of(key: str) -> dict[str, Any]:
    # A template turns a number into text; @if keeps an absent id absent rather than "".
    return {"@if": {"exists": {"@path": f"$.{key}"}, "then": {"@template": f"{{{{{key}}}}}"}}}


def _values(fields: dict[str, Any]) -> dict[str, Any]:
    # The relay leaves a field alone when its value is absent or null; so does Segment's engine with @if exists
    # (a plain @path would send null).
    return {
        name: {"@if": {"exists": mapping, "then": mapping}} if isinstance(mapping, dict) else mapping
        for name, mapping in fields.items()
    }
