"""Run one of the Node scripts under tests/support with a JSON document on stdin; return its JSON answer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

SUPPORT = Path(__file__).parent
ROOT = SUPPORT.parents[1]


def run_node_script(name: str, document: Any) -> Any:
    """`node tests/support/<name>` from the project root (so node_modules resolves), JSON in and out."""
    completed = subprocess.run(
        ["node", str(SUPPORT / name)],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    return json.loads(completed.stdout)
