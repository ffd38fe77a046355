"""Write config data as TOML: top-level tables, arrays of tables, and inline tables for mappings."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


class TomlWriteError(ValueError):
    """A value TOML cannot hold, such as null."""


def key(name: str) -> str:
    """A TOML key, quoted when it is not bare."""
    return name if _BARE_KEY.fullmatch(name) else basic_string(name)


def string(text: str) -> str:
    """A TOML string: literal ('...') when that needs no escapes and reads better, else basic ("...")."""
    needs_escape = any(ord(character) < 0x20 or ord(character) == 0x7F for character in text)
    if ('"' in text or "\\" in text) and "'" not in text and not needs_escape:
        return f"'{text}'"
    return basic_string(text)


def basic_string(text: str) -> str:
    """A TOML basic string, with every control character escaped."""
    escaped = []
    for character in text:
        if character in _ESCAPES:
            escaped.append(_ESCAPES[character])
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            escaped.append(f"\\u{ord(character):04X}")
        else:
            escaped.append(character)
    return '"' + "".join(escaped) + '"'


def value(item: Any, where: str = "") -> str:
    """A TOML value written on one line (inline tables for mappings)."""
    if item is None:
        raise TomlWriteError(f"{where}: null cannot be written in TOML; replace it with a value or remove it")
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if not math.isfinite(item):
            raise TomlWriteError(f"{where}: {item} cannot be written in TOML")
        return repr(item)
    if isinstance(item, str):
        return string(item)
    if isinstance(item, list):
        return "[" + ", ".join(value(element, f"{where}[{index}]") for index, element in enumerate(item)) + "]"
    if isinstance(item, Mapping):
        pairs = [f"{key(str(name))} = {value(element, f'{where}.{name}')}" for name, element in item.items()]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    raise TomlWriteError(f"{where}: {type(item).__name__} cannot be written in TOML")


def table(name: str, entries: Mapping[str, Any], *, array: bool = False) -> str:
    """A [table] or [[array table]] whose entries are written as key = value lines."""
    header = f"[[{name}]]" if array else f"[{name}]"
    lines = [header, *(f"{key(entry)} = {value(item, f'{name}.{entry}')}" for entry, item in entries.items())]
    return "\n".join(lines) + "\n"
