"""The real Pendo agent from the npm package @pendo/agent, shaped like the CDN's pendo.js.

`dist/pendo.module.js` is the agent as `function loadAgent(PendoConfig)` followed by an ES export line;
the CDN serves the same agent with the subscription's config embedded. Dropping the export line and
calling loadAgent with a local config gives that script, and the agent then downloads nothing.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from generator.paths import NODE_MODULES, node_modules_dirs

# The checkout's copy; an installed package looks in node_modules of the current folder and its parents,
# since the agent's npm package carries no license to redistribute it in the wheel.
AGENT_PACKAGE = NODE_MODULES / "@pendo" / "agent"
AGENT_VERSION = "2.291.4"
MISSING = (
    f"the Pendo agent is not installed here: run `npm install @pendo/agent@{AGENT_VERSION}` in this folder "
    "to see what Pendo receives (the page still shows each decision of the script)"
)
_EXPORT_LINE = re.compile(r"\nexport \{[^}]*\};\s*$")


def find_agent_package() -> Path | None:
    """@pendo/agent from the checkout, else from node_modules of the current folder or a parent."""
    for folder in [NODE_MODULES, *node_modules_dirs()]:
        if (folder / "@pendo" / "agent" / "dist" / "pendo.module.js").is_file():
            return folder / "@pendo" / "agent"
    return None


def _package() -> Path:
    return find_agent_package() or AGENT_PACKAGE


def servers() -> dict[str, dict[str, str]]:
    """The package's region table: data host, asset host and agent env per region."""
    loaded: dict[str, dict[str, str]] = json.loads((_package() / "dist" / "servers.json").read_text())
    return loaded


@functools.cache
def _module_of(package: Path) -> str:
    path = package / "dist" / "pendo.module.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `npm ci` in the project root")
    text = path.read_text(encoding="utf-8")
    stripped, count = _EXPORT_LINE.subn("\n", text)
    if count != 1:
        raise ValueError("pendo.module.js no longer ends in one export line; update generator/demo/local_agent.py")
    return stripped


def agent_script(api_key: str, region: str = "io", data_origin: str | None = None) -> str:
    """pendo.js as the CDN would serve it for this subscription; data_origin replaces the region's data host."""
    return agent_script_for(_package(), api_key, region, data_origin)


@functools.cache
def agent_script_for(package: Path, api_key: str, region: str = "io", data_origin: str | None = None) -> str:
    """pendo.js from the @pendo/agent package in that folder, as the CDN would serve it for this subscription."""
    table: dict[str, dict[str, str]] = json.loads((package / "dist" / "servers.json").read_text())
    server = data_origin or table["data"][region]
    config = {
        "apiKey": api_key,
        "env": table["ENV"][region],
        "server": server,
        "designerServer": server,
        "assetHost": table["assetHost"][region],
    }
    return f"(function () {{\n{_module_of(package)}\nloadAgent({json.dumps(config)});\n}})();\n"
