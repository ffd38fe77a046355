"""Failure messages of the test kit: what was expected, what Pendo or Segment got, and the difference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def show(values: Mapping[str, Any]) -> str:
    """A record on one line: id first, then the other keys in order."""
    if not values:
        return "(nothing)"
    ordered = sorted(values.items(), key=lambda item: (item[0] != "id", item[0]))
    return ", ".join(f"{key}={value!r}" for key, value in ordered)


def differences(expected: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> list[str]:
    """One line per expected key the actual record lacks or holds another value for (nested mappings walked)."""
    lines: list[str] = []
    for key, want in expected.items():
        name = f"{prefix}{key}"
        if key not in actual:
            lines.append(f"{name}: expected {want!r}, missing")
            continue
        got = actual[key]
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            lines.extend(differences(want, got, f"{name}."))
        elif got != want:
            lines.append(f"{name}: expected {want!r}, got {got!r}")
    return lines


def matches(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Whether actual holds every expected key with the expected value."""
    return not differences(expected, actual)


def report(
    title: str,
    expected: Mapping[str, Any],
    actual: Mapping[str, Any] | None,
    notes: Sequence[str],
    who: str = "Pendo",
) -> str:
    """The whole message: a title, expected and got, the differences, then what else explains it."""
    got = f"{who} got:"
    lines = [title, f"  {'expected:':<{len(got)}} {show(expected)}"]
    if actual is None:
        lines.append(f"  {got} nothing")
    else:
        lines.append(f"  {got} {show(actual)}")
        diff = differences(expected, actual)
        if diff:
            lines.append("  differences:")
            lines.extend(f"    {line}" for line in diff)
    lines.extend(f"  {note}" for note in notes if note)
    return "\n".join(lines)
