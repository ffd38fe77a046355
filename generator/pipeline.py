"""The build pipeline: config → rendered modules → bundle → files in the output directory."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from generator import __version__, guide_events
from generator.bundle import (
    MINIFIED_NAME,
    MODULE_MAP_NAME,
    MODULE_NAME,
    PINNED_ESBUILD_VERSION,
    READABLE_NAME,
    SOURCE_MAP_NAME,
    Bundle,
    bundle_module,
    bundle_with_esbuild,
    esbuild_version,
    require_esbuild,
)
from generator.config import Config
from generator.config_loader import config_digest, load_config
from generator.errors import BundleError, GeneratorError
from generator.fallback_bundle import bundle_in_process
from generator.files import write_files
from generator.manifest import make_manifest
from generator.outputs import INLINE_NAME, hashed_copies, inline_script
from generator.paths import STATIC_DIR
from generator.render import render
from generator.webhook import double_tracking_warning

MANIFEST_NAME = "manifest.json"
BundlerChoice = Literal["esbuild", "esbuild-py"]
# script: the drop-in <script> (the default); esm: the ES module plugin and its types; both.
OutputFormat = Literal["script", "esm", "both"]
OUTPUT_FORMATS = ("script", "esm", "both")
TYPES_NAME = "segment-pendo.d.mts"
MODULE_EXPORT = "pendoPlugin"


def build(
    config: Config | str | Path,
    out_dir: str | Path,
    *,
    bundler: BundlerChoice = "esbuild",
    inline: bool = False,
    link_map: bool = False,
    output_format: OutputFormat = "script",
) -> dict[str, Any]:
    """Build the drop-in script (or the ES module, or both) into out_dir and return the manifest.

    Nothing is written on failure. Besides the stable names, the script is written under a content-hashed
    name (the manifest's "entry"), which pages should reference so a cached copy of an earlier build never
    meets a newer SRI. With inline, also an inline <script> element and its CSP hash source. The source maps
    are always written; the script and module link to theirs with link_map, and in debug builds. The ES
    module, segment-pendo.mjs, exports the same plugin as pendoPlugin, typed by segment-pendo.d.mts.
    """
    if output_format not in OUTPUT_FORMATS:
        raise GeneratorError(f"format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    with_script, with_module = output_format != "esm", output_format != "script"
    if inline and not with_script:
        raise GeneratorError("--inline writes the script into an inline <script>: build with --format script or both")
    if with_module and bundler != "esbuild":
        raise BundleError("the ES module needs the esbuild binary (the esbuild-py fallback writes the script only)")
    if not isinstance(config, Config):
        config = load_config(config)
    link = link_map or config.build.debug
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="segment-pendo-") as work:
        if with_script:
            used_bundler = _add_script(
                config,
                Path(work) / "src",
                bundler=bundler,
                link_map=link,
                inline=inline,
                files=files,
                extra=extra,
                warnings=warnings,
            )
        if with_module:
            used_bundler = _add_module(config, Path(work) / "module", link, files, extra)
            if output_format == "esm" and config.source.global_key is not None:
                warnings.append(
                    "[source] global_key is not used by the ES module (analytics.js hands itself to the plugin)"
                )
        warnings.extend(_version_warning(used_bundler))
        warning = double_tracking_warning(config)
        if warning:
            warnings.append(warning)
        loop_warning = guide_events.webhook_loop_warning(config)  # guide events sent back to Segment
        if loop_warning:
            warnings.append(loop_warning)
        manifest = make_manifest(
            files,
            generator_version=__version__,
            bundler=used_bundler,
            config_digest=config_digest(config),
            warnings=warnings,
        )
        inline_entry = extra.pop("inline", None)
        manifest = {**extra, **manifest}
        if inline_entry is not None:
            manifest["inline"] = inline_entry
        files[MANIFEST_NAME] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        _publish(files, Path(out_dir))
    return manifest


def _add_script(
    config: Config,
    source_dir: Path,
    *,
    bundler: BundlerChoice,
    link_map: bool,
    inline: bool,
    files: dict[str, bytes],
    extra: dict[str, Any],
    warnings: list[str],
) -> str:
    """Add the script's files (and its manifest entries to extra); returns the bundler that made it."""
    modules = render(config, source_dir)
    result = _bundle(source_dir, modules, config.build.target, bundler, link_map)
    warnings.extend(result.warnings)
    files[READABLE_NAME] = result.readable.encode("utf-8")
    files[MINIFIED_NAME] = result.minified.encode("utf-8")
    files[SOURCE_MAP_NAME] = result.source_map.encode("utf-8")
    hashed = hashed_copies(result.minified, result.source_map)
    files.update(hashed)
    # The manifest's "entry": the hashed name, which changes whenever the script does.
    extra["entry"] = next(iter(hashed))
    if inline:
        element, inline_source = inline_script(result.minified)
        files[INLINE_NAME] = element.encode("utf-8")
        extra["inline"] = {"file": INLINE_NAME, "csp_hash": inline_source}
    return result.bundler


def _add_module(
    config: Config, source_dir: Path, link_map: bool, files: dict[str, bytes], extra: dict[str, Any]
) -> str:
    """Add the ES module, its map and its types (and the manifest's "module"); returns the bundler that made it."""
    binary = require_esbuild()
    modules = render(config, source_dir, module=True)
    code, source_map = bundle_module(binary, source_dir, modules, config.build.target, link_map=link_map)
    files[MODULE_NAME] = code.encode("utf-8")
    files[MODULE_MAP_NAME] = source_map.encode("utf-8")
    files[TYPES_NAME] = (STATIC_DIR / TYPES_NAME).read_bytes()
    extra["module"] = {"file": MODULE_NAME, "types": TYPES_NAME, "export": MODULE_EXPORT}
    return f"esbuild {esbuild_version(binary)}"


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
