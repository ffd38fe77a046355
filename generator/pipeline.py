"""The build pipeline: config → rendered modules → bundle → files in the output directory."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from generator import __version__, guide_events
from generator.bundle import (
    MINIFIED_NAME,
    PINNED_ESBUILD_VERSION,
    READABLE_NAME,
    SOURCE_MAP_NAME,
    Bundle,
    bundle_with_esbuild,
    require_esbuild,
)
from generator.config import Config
from generator.config_loader import config_digest, load_config
from generator.errors import BundleError
from generator.fallback_bundle import bundle_in_process
from generator.files import write_files
from generator.manifest import make_manifest
from generator.outputs import INLINE_NAME, hashed_copies, inline_script
from generator.render import render
from generator.webhook import double_tracking_warning

MANIFEST_NAME = "manifest.json"
BundlerChoice = Literal["esbuild", "esbuild-py"]


def build(
    config: Config | str | Path,
    out_dir: str | Path,
    *,
    bundler: BundlerChoice = "esbuild",
    inline: bool = False,
    link_map: bool = False,
) -> dict[str, Any]:
    """Build the drop-in script into out_dir and return the manifest; nothing is written on failure.

    Besides the stable names, the script is written under a content-hashed name (the manifest's "entry"),
    which pages should reference so a cached copy of an earlier build never meets a newer SRI. With
    inline, also an inline <script> element and its CSP hash source. The source map is always written; the
    script links to it with link_map, and in debug builds.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    with tempfile.TemporaryDirectory(prefix="segment-pendo-") as work:
        source_dir = Path(work) / "src"
        modules = render(config, source_dir)
        result = _bundle(source_dir, modules, config.build.target, bundler, link_map or config.build.debug)
        warnings = [*result.warnings, *_version_warning(result.bundler)]
        warning = double_tracking_warning(config)
        if warning:
            warnings.append(warning)
        loop_warning = guide_events.webhook_loop_warning(config)  # guide events sent back to Segment
        if loop_warning:
            warnings.append(loop_warning)
        files = {
            READABLE_NAME: result.readable.encode("utf-8"),
            MINIFIED_NAME: result.minified.encode("utf-8"),
            SOURCE_MAP_NAME: result.source_map.encode("utf-8"),
        }
        hashed = hashed_copies(result.minified, result.source_map)
        files.update(hashed)
        inline_source = None
        if inline:
            element, inline_source = inline_script(result.minified)
            files[INLINE_NAME] = element.encode("utf-8")
        manifest = make_manifest(
            files,
            generator_version=__version__,
            bundler=result.bundler,
            config_digest=config_digest(config),
            warnings=warnings,
        )
        # The manifest's "entry": the hashed name, which changes whenever the script does.
        manifest = {"entry": next(iter(hashed)), **manifest}
        if inline_source is not None:
            manifest["inline"] = {"file": INLINE_NAME, "csp_hash": inline_source}
        files[MANIFEST_NAME] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        _publish(files, Path(out_dir))
    return manifest


def _bundle(source_dir: Path, modules: list[Any], target: str, bundler: BundlerChoice, link_map: bool) -> Bundle:
    """The official esbuild binary unless the in-process fallback is asked for; never a silent fallback."""
    if bundler == "esbuild-py":
        return bundle_in_process(source_dir, modules, link_map=link_map)
    if bundler != "esbuild":
        raise BundleError(f"bundler {bundler!r} is not one of esbuild, esbuild-py")
    return bundle_with_esbuild(require_esbuild(), source_dir, modules, target, link_map=link_map)


def _version_warning(bundler: str) -> list[str]:
    version = bundler.removeprefix("esbuild ")
    if not bundler.startswith("esbuild ") or version == PINNED_ESBUILD_VERSION:
        return []
    return [
        f"bundled with esbuild {version}, not the pinned {PINNED_ESBUILD_VERSION}: the output may differ from the "
        f"tested one; install esbuild@{PINNED_ESBUILD_VERSION} or set ESBUILD_BINARY_PATH to it"
    ]


def _publish(files: dict[str, bytes], out_dir: Path) -> None:
    """All files or none; the manifest goes last."""
    write_files(files, out_dir, last=MANIFEST_NAME)
