"""segment-pendo: build one drop-in script that forwards Segment's analytics.js calls to Pendo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from generator.config import Config


def build(config: Config | str | Path, out_dir: str | Path, **options: Any) -> dict[str, Any]:
    """Build the script for a config (or a config file's path) into out_dir and return the manifest."""
    from generator.pipeline import build as run_build  # noqa: PLC0415  (keeps `import generator` light)

    return run_build(config, out_dir, **options)


def script_tag(build: str | Path | Mapping[str, Any], **options: Any) -> str:
    """The <script> tag for a build folder, its manifest.json or the manifest: see generator.tag.script_tag."""
    from generator.tag import script_tag as make_tag  # noqa: PLC0415

    return make_tag(build, **options)
