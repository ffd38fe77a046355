"""Which Pendo agent the test kit serves: the real one from npm's @pendo/agent when found, else the stand-in.

Either way the served script starts with the recorder, which keeps every call the page makes on
`window.pendo`, so a test sees the raw calls whichever agent answers them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from generator.demo import local_agent
from generator.errors import GeneratorError
from generator.paths import NODE_MODULES

HERE = Path(__file__).resolve().parent
RECORDER = HERE / "recorder.js"
STAND_IN = HERE / "stand_in_agent.js"
STAND_IN_WORD = "stand-in"
AgentKind = Literal["real", "stand-in"]


@dataclass(frozen=True)
class AgentSource:
    """The agent the kit serves: the real package's folder, or None for the stand-in."""

    package: Path | None

    @property
    def kind(self) -> AgentKind:
        """Either "real" or "stand-in", as a test reads it from `pendo.agent`."""
        return "real" if self.package is not None else "stand-in"

    def script(self, api_key: str, region: str, data_origin: str) -> str:
        """pendo.js as the kit serves it for this subscription: recorder, agent, then the recorder's wrap."""
        if self.package is None:
            agent = STAND_IN.read_text(encoding="utf-8")
        else:
            agent = local_agent.agent_script_for(self.package, api_key, region, data_origin)
        return (
            f"{RECORDER.read_text(encoding='utf-8')}\n"
            "window.__segmentPendoKit.recordQueue();\n"
            f"{agent}\n"
            "window.__segmentPendoKit.wrap();\n"
            f"/* served by segment-pendo's test kit: {json.dumps(self.kind)} agent */\n"
        )


def find_agent(explicit: str | None, start: Path) -> AgentSource:
    """The agent named (a @pendo/agent folder, its pendo.module.js, a node_modules folder, or "stand-in").

    With none named: node_modules/@pendo/agent of start and each of its parents, then this checkout's.
    """
    if explicit:
        if explicit.strip() == STAND_IN_WORD:
            return AgentSource(None)
        package = _package_of(Path(explicit).expanduser())
        if package is None:
            raise GeneratorError(
                f"segment-pendo agent {explicit!r} is not @pendo/agent: pass its folder (holding "
                "dist/pendo.module.js), or `stand-in`"
            )
        return AgentSource(package)
    folder = start.resolve()
    for candidate in (folder, *folder.parents):
        package = _package_of(candidate / "node_modules" / "@pendo" / "agent")
        if package is not None:
            return AgentSource(package)
    return AgentSource(_package_of(NODE_MODULES / "@pendo" / "agent"))


def _package_of(path: Path) -> Path | None:
    for candidate in (path, path / "@pendo" / "agent", path.parent.parent):
        if (candidate / "dist" / "pendo.module.js").is_file() and (candidate / "dist" / "servers.json").is_file():
            return candidate
    return None
