"""Segment's own mapping and FQL engines (Node, from node_modules) called from the tests."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("segment_engine.cjs")
ROOT = Path(__file__).parents[2]


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
    completed = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    output = json.loads(completed.stdout)
    return SegmentRun(output["mappingError"], output["subscribeError"], output["results"])
