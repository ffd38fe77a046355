"""`import-segment`: turn a Pendo Web (Actions) destination's settings, as Segment stores them, into our config.

The result behaves like that destination for the same events: its subscriptions and mappings carry
over as they are, fields its mappings leave out are switched off, and what the destination never
did (clearing Pendo's session on analytics.reset()) stays off.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from generator import __version__
from generator.actions import ACTIONS
from generator.config_loader import parse_config
from generator.errors import ConfigError, GeneratorError
from generator.files import write_file
from generator.fql import segment_differences
from generator.regions import REGION_BY_SEGMENT_URL, REGIONS
from generator.toml_writer import TomlWriteError, table

SUPPORTED_ACTIONS = ("identify", "group", "track")
# Settings are a small JSON document; a bigger (or endless, like /dev/zero) file is not one.
MAX_SETTINGS_BYTES = 10_000_000
# Far deeper than any mapping can be (mappings allow 8 levels), shallow enough for every recursive step after.
MAX_SETTINGS_DEPTH = 64


class SegmentImportError(GeneratorError):
    """The Segment settings cannot be turned into a config; the message names the setting or subscription."""


def import_segment_settings(settings_path: Path, out_path: Path, *, force: bool = False) -> str:
    """Write the config for a Segment settings file and return its text; nothing is written on error."""
    if out_path.exists() and not force:
        raise SegmentImportError(f"{out_path} exists; pass --force to replace it")
    settings = _read_settings(settings_path)
    text = config_text(settings, source_name=settings_path.name)
    write_file(out_path, text.encode("utf-8"))
    return text


def behaviour_notes(text: str) -> list[str]:
    """One line per imported subscription whose FQL Segment's engine reads differently from this tool."""
    config = parse_config(tomllib.loads(text))
    return [
        f"subscriptions[{index}] {subscription.label!r} uses {difference}"
        for index, subscription in enumerate(config.subscriptions)
        for difference in segment_differences(subscription.fql)
    ]


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
        if len(raw) > MAX_SETTINGS_BYTES:
            raise SegmentImportError(f"{path}: over 10 MB, too big for a destination's settings")
        document = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise SegmentImportError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SegmentImportError(f"{path}: not a readable JSON file ({error})") from None
    except RecursionError:
        raise SegmentImportError(f"{path}: JSON nested too deeply to read; export the destination's settings") from None
    if _nesting(document) > MAX_SETTINGS_DEPTH:
        raise SegmentImportError(
            f"{path}: JSON nested more than {MAX_SETTINGS_DEPTH} levels deep; not a destination's settings"
        )
    # Segment's APIs wrap the destination's settings in {"settings": {...}} in some exports.
    if isinstance(document, dict) and isinstance(document.get("settings"), dict) and "apiKey" not in document:
        document = document["settings"]
    if not isinstance(document, dict):
        raise SegmentImportError(f"{path}: expected a JSON object of destination settings")
    return document


def _nesting(document: Any) -> int:
    """How many arrays and objects deep a JSON document goes (counted without recursion)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            pending.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def config_text(settings: dict[str, Any], *, source_name: str = "settings") -> str:
    """The TOML config for a settings object, validated by the same rules as any config."""
    problems: list[str] = []
    known = {
        "apiKey",
        "region",
        "cnameContentHost",
        "disableUserTraitsOnLoad",
        "disableGroupIdAndTraitsOnLoad",
        "subscriptions",
    }
    unknown = sorted(set(settings) - known)
    if unknown:
        problems.append(f"unknown settings {', '.join(unknown)}; this importer knows {', '.join(sorted(known))}")
    pendo = _pendo_table(settings, problems)
    disable_group = settings.get("disableGroupIdAndTraitsOnLoad") is True
    on_load = {
        "user_traits": settings.get("disableUserTraitsOnLoad") is not True,
        "group": not disable_group,
    }
    subscriptions = [
        converted
        for index, subscription in enumerate(_subscriptions(settings, problems))
        if (converted := _subscription(index, subscription, disable_group, problems)) is not None
    ]
    if problems:
        raise SegmentImportError(_listed(source_name, problems))
    try:
        parts = [
            f"# Imported from Segment's Pendo Web (Actions) settings ({source_name}) by segment-pendo {__version__}.\n",
            table("pendo", pendo),
            table("on_load", on_load),
            *(_subscription_tables(subscription) for subscription in subscriptions),
            "# Segment's destination never cleared Pendo's session on analytics.reset(); set true to do so.\n"
            + table("logout", {"clear_session": False}),
        ]
    except TomlWriteError as error:
        raise SegmentImportError(_listed(source_name, [str(error)])) from None
    text = "\n".join(parts)
    _check_builds(text, source_name, [subscription["name"] for subscription in subscriptions])
    return text


def _pendo_table(settings: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    pendo: dict[str, Any] = {"api_key": settings.get("apiKey")}
    if not isinstance(settings.get("apiKey"), str) or not settings["apiKey"]:
        problems.append("apiKey: missing; the destination's Pendo API key is required")
    region = settings.get("region", "https://cdn.pendo.io")
    if isinstance(region, str) and region.rstrip("/") in REGION_BY_SEGMENT_URL:
        pendo["region"] = REGION_BY_SEGMENT_URL[region.rstrip("/")]
    elif region in REGIONS:
        pendo["region"] = region
    else:
        choices = ", ".join(REGION_BY_SEGMENT_URL)
        problems.append(f"region: {region!r} is not a Pendo CDN this importer knows ({choices})")
    cname = settings.get("cnameContentHost")
    if cname:
        pendo["content_host"] = cname
    return pendo


def _subscriptions(settings: dict[str, Any], problems: list[str]) -> list[Any]:
    subscriptions = settings.get("subscriptions", [])
    # In the CDN's settings the subscriptions are a JSON string.
    if isinstance(subscriptions, str):
        try:
            subscriptions = json.loads(subscriptions)
        except json.JSONDecodeError as error:
            problems.append(f"subscriptions: not valid JSON ({error})")
            return []
    if not isinstance(subscriptions, list):
        problems.append("subscriptions: expected a list of {partnerAction, name, enabled, subscribe, mapping}")
        return []
    return subscriptions


def _subscription(index: int, raw: Any, disable_group: bool, problems: list[str]) -> dict[str, Any] | None:
    label = f"subscriptions[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{label}: expected an object")
        return None
    label += f" {raw.get('name', '')!r}"
    action = raw.get("partnerAction")
    if action not in SUPPORTED_ACTIONS:
        problems.append(f"{label}: partnerAction {action!r} is not one of {', '.join(SUPPORTED_ACTIONS)}")
        return None
    mapping = raw.get("mapping", {})
    if not isinstance(mapping, dict):
        problems.append(f"{label}: mapping must be an object")
        return None
    converted: dict[str, Any] = {
        "action": action,
        "name": raw.get("name") or ACTIONS[action].preset_name,
        "enabled": raw.get("enabled", True) is not False,
        "subscribe": raw.get("subscribe", ACTIONS[action].default_subscribe),
    }
    if action == "identify" and disable_group:
        converted["account_fallback"] = False
    # A field Segment's mapping leaves out is not sent there; empty here means the same.
    converted["mapping"] = {
        spec.name: mapping.get(spec.name, {} if spec.kind == "object" else "") for spec in ACTIONS[action].fields
    }
    unknown_fields = sorted(set(mapping) - {spec.name for spec in ACTIONS[action].fields})
    if unknown_fields:
        problems.append(f"{label}: mapping has fields {action} does not know: {', '.join(unknown_fields)}")
    return converted


def _subscription_tables(subscription: dict[str, Any]) -> str:
    settings = {name: item for name, item in subscription.items() if name != "mapping"}
    return table("subscriptions", settings, array=True) + table("subscriptions.mapping", subscription["mapping"])


def _check_builds(text: str, source_name: str, names: list[str]) -> None:
    """Validate the written config; a problem in a subscription is reported under Segment's name for it."""
    try:
        parse_config(tomllib.loads(text), source=source_name)
    except ConfigError as error:
        problems = [_name_subscription(problem, names) for problem in error.problems]
        raise SegmentImportError(_listed(source_name, problems)) from None


def _name_subscription(problem: str, names: list[str]) -> str:
    match = re.match(r"^subscriptions\.(\d+)\.?(.*)$", problem)
    if not match:
        return problem
    index = int(match.group(1))
    return f"subscriptions[{index}] {names[index]!r}: {match.group(2)}"


def _listed(source_name: str, problems: list[str]) -> str:
    lines = "\n".join(f"  {problem}" for problem in problems)
    return f"{source_name}: cannot import:\n{lines}"
