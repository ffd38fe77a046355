"""Segment's own mapping and FQL engines (Node, from node_modules) called from the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.node_script import run_node_script


@dataclass(frozen=True)
class SegmentRun:
    """What Segment's engines made of a mapping, a subscription and some events."""

    mapping_error: str | None
    subscribe_error: str | None
    results: list[dict[str, Any]]


def run_segment_engine(
    events: list[dict[str, Any]], *, mapping: dict[str, Any] | None = None, subscribe: str | None = None
) -> SegmentRun:
    """Validate the mapping and subscription as Segment does, then map and match each event."""
    document: dict[str, Any] = {"events": events}
    if mapping is not None:
        document["mapping"] = mapping
    if subscribe is not None:
        document["subscribe"] = subscribe
    output = run_node_script("segment_engine.cjs", document)
    return SegmentRun(output["mappingError"], output["subscribeError"], output["results"])
