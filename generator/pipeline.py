"""The build pipeline: config → rendered modules → bundle → files in the output directory."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from generator import __version__, guide_events
from generator.bundle import (
    MINIFIED_NAME,
    READABLE_NAME,
    SOURCE_MAP_NAME,
    Bundle,
    bundle_with_esbuild,
    find_esbuild,
)
from generator.config import Config
from generator.config_loader import config_digest, load_config
from generator.errors import BundleError
from generator.fallback_bundle import bundle_in_process
from generator.manifest import make_manifest
from generator.render import render
from generator.webhook import double_tracking_warning

MANIFEST_NAME = "manifest.json"
BundlerChoice = Literal["auto", "esbuild", "esbuild-py"]


def build(config: Config | str | Path, out_dir: str | Path, *, bundler: BundlerChoice = "auto") -> dict[str, Any]:
    """Build the drop-in script into out_dir and return the manifest; nothing is written on failure."""
    if not isinstance(config, Config):
        config = load_config(config)
    with tempfile.TemporaryDirectory(prefix="segment-pendo-") as work:
        source_dir = Path(work) / "src"
        modules = render(config, source_dir)
        result = _bundle(source_dir, modules, config.build.target, bundler)
        warning = double_tracking_warning(config)
        if warning:
            result.warnings.append(warning)
        loop_warning = guide_events.webhook_loop_warning(config)  # guide events (issue #14)
        if loop_warning:
            result.warnings.append(loop_warning)
        files = {
            READABLE_NAME: result.readable.encode("utf-8"),
            MINIFIED_NAME: result.minified.encode("utf-8"),
            SOURCE_MAP_NAME: result.source_map.encode("utf-8"),
        }
        manifest = make_manifest(
            files,
            generator_version=__version__,
            bundler=result.bundler,
            config_digest=config_digest(config),
            warnings=result.warnings,
        )
        files[MANIFEST_NAME] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        _publish(files, Path(out_dir))
    return manifest


def _bundle(source_dir: Path, modules: list[Any], target: str, bundler: BundlerChoice) -> Bundle:
    if bundler == "esbuild-py":
        return bundle_in_process(source_dir, modules)
    binary = find_esbuild()
    if binary is not None:
        return bundle_with_esbuild(binary, source_dir, modules, target)
    if bundler == "esbuild":
        raise BundleError("no esbuild binary found: run `npm ci`, put esbuild on PATH or set ESBUILD_BINARY_PATH")
    return bundle_in_process(
        source_dir, modules, reason="no esbuild binary found; run `npm ci` or set ESBUILD_BINARY_PATH"
    )


def _publish(files: dict[str, bytes], out_dir: Path) -> None:
    """Move finished files into place; each replace is atomic, and the manifest goes last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in [*sorted(name for name in files if name != MANIFEST_NAME), MANIFEST_NAME]:
        partial = out_dir / f".{name}.partial"
        partial.write_bytes(files[name])
        os.replace(partial, out_dir / name)
