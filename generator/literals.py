"""The table of config values the compiled JavaScript refers to by index.

Compiled predicates and mappings never contain a config value themselves (true, false and null aside,
which are no text): every string, number, path or list they need is stored here and rendered once, as
JSON, by config.js.jinja.
"""

from __future__ import annotations

import json
from typing import Any


class LiteralTable:
    """Collects JSON values and hands out stable indexes, each distinct value once."""

    def __init__(self) -> None:
        """Start empty."""
        self._values: list[Any] = []
        self._index: dict[str, int] = {}

    def ref(self, value: Any) -> str:
        """JavaScript that reads value from the table, e.g. `L[3]`; true, false and null are written as such."""
        if value is None or isinstance(value, bool):
            return json.dumps(value)
        key = json.dumps(value, sort_keys=True)
        if key not in self._index:
            self._index[key] = len(self._values)
            self._values.append(value)
        return f"L[{self._index[key]}]"

    @property
    def values(self) -> list[Any]:
        """Every value, in index order."""
        return list(self._values)
