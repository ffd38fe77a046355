"""Turn the rendered modules into one script: the esbuild binary, else the in-process fallback."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import BundleError
from generator.paths import INSTALLED, NODE_MODULES, PACKAGED_ESBUILD, node_modules_dirs
from generator.render import ENTRY_MODULE, RenderedModule

READABLE_NAME = "segment-pendo.js"
MINIFIED_NAME = "segment-pendo.min.js"
SOURCE_MAP_NAME = MINIFIED_NAME + ".map"
# The ES module keeps one name across builds: the app's bundler hashes what it imports.
MODULE_NAME = "segment-pendo.mjs"
MODULE_MAP_NAME = MODULE_NAME + ".map"
ESBUILD_TIMEOUT_SECONDS = 120
# The version package.json pins and the wheel carries (a test holds the two equal).
PINNED_ESBUILD_VERSION = "0.28.2"
NO_ESBUILD = (
    "no esbuild binary found. Install segment-pendo from a wheel built for this platform (it carries esbuild), "
    f"or run `npm install --save-exact esbuild@{PINNED_ESBUILD_VERSION}` in this folder, or set ESBUILD_BINARY_PATH "
    "to an esbuild binary; or pass --bundler esbuild-py for a build that is not minified"
)
WINDOWS = os.name == "nt"
# platform.machine() on Windows → the suffix of esbuild's npm package (@esbuild/win32-x64, …).
WINDOWS_MACHINES = {"amd64": "x64", "x86_64": "x64", "arm64": "arm64", "aarch64": "arm64", "x86": "ia32"}
# Internal property names end in "_" (a naming convention), so the minified build may shorten them.
MANGLED_PROPERTIES = "_$"


@dataclass(frozen=True)
class Bundle:
    """The bundler's three outputs and what made them."""

    readable: str
    minified: str
    source_map: str
    bundler: str
    warnings: list[str] = field(default_factory=list)


def find_esbuild(start: Path | None = None) -> Path | None:
    """ESBUILD_BINARY_PATH, the packaged binary, node_modules/.bin of start (default: cwd) and its parents, PATH.

    In a checkout (or an editable install) the packaged binary is the checkout's own node_modules one.
    """
    explicit = os.environ.get("ESBUILD_BINARY_PATH")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BundleError(f"ESBUILD_BINARY_PATH={explicit} is not an executable file; fix or unset it")
        return path
    packaged = [PACKAGED_ESBUILD] if INSTALLED else npm_esbuild(NODE_MODULES)
    nearby = [candidate for folder in node_modules_dirs(start) for candidate in npm_esbuild(folder)]
    for candidate in [*packaged, *nearby]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("esbuild")
    return Path(found) if found else None


def npm_esbuild(node_modules: Path) -> list[Path]:
    """Where npm puts a runnable esbuild in a node_modules folder, best first.

    On Windows npm's .bin holds only wrappers (esbuild.cmd, esbuild.ps1, a shell script), so the platform
    package's esbuild.exe comes first and the .cmd wrapper (which needs node) second.
    """
    if not WINDOWS:
        return [node_modules / ".bin" / "esbuild"]
    machine = WINDOWS_MACHINES.get(platform.machine().lower(), "x64")
    return [node_modules / "@esbuild" / f"win32-{machine}" / "esbuild.exe", node_modules / ".bin" / "esbuild.cmd"]


def require_esbuild(start: Path | None = None) -> Path:
    """The esbuild binary, or a BundleError saying how to get one."""
    binary = find_esbuild(start)
    if binary is None:
        raise BundleError(NO_ESBUILD)
    return binary


def esbuild_version(binary: Path) -> str:
    """The version the binary reports, e.g. 0.28.2."""
    return _run([str(binary), "--version"], cwd=None).strip()


def bundle_with_esbuild(
    binary: Path, source_dir: Path, modules: list[RenderedModule], target: str, *, link_map: bool = False
) -> Bundle:
    """Bundle with the official binary: readable and minified IIFEs, and a source map of the minified one.

    The map is always written; the minified script names it in a `//# sourceMappingURL` line only with
    link_map (the served script carries no bytes for debugging tools otherwise).
    """
    out_dir = source_dir / "_out"
    common = _bundle_arguments(binary, target, "iife")
    try:
        _run([*common, f"--outfile={out_dir / READABLE_NAME}"], cwd=source_dir)
        _run(
            [
                *common,
                "--minify",
                f"--mangle-props={MANGLED_PROPERTIES}",
                "--sourcemap" if link_map else "--sourcemap=external",
                f"--outfile={out_dir / MINIFIED_NAME}",
            ],
            cwd=source_dir,
        )
    except BundleError as error:
        raise BundleError(_name_origins(str(error), modules)) from None
    source_map = _relabel_sources((out_dir / SOURCE_MAP_NAME).read_text(), modules)
    return Bundle(
        readable=(out_dir / READABLE_NAME).read_text(),
        minified=(out_dir / MINIFIED_NAME).read_text(),
        source_map=source_map,
        bundler=f"esbuild {esbuild_version(binary)}",
    )


def bundle_module(
    binary: Path, source_dir: Path, modules: list[RenderedModule], target: str, *, link_map: bool = False
) -> tuple[str, str]:
    """Bundle the ES module's render into one minified module exporting pendoPlugin; returns it and its source map.

    Minified like the script, so the app's bundle grows by as little: app bundlers do not shorten properties.
    """
    out_file = source_dir / "_out" / MODULE_NAME
    command = [
        *_bundle_arguments(binary, target, "esm"),
        "--minify",
        f"--mangle-props={MANGLED_PROPERTIES}",
        "--sourcemap" if link_map else "--sourcemap=external",
        f"--outfile={out_file}",
    ]
    try:
        _run(command, cwd=source_dir)
    except BundleError as error:
        raise BundleError(_name_origins(str(error), modules)) from None
    source_map = _relabel_sources(out_file.with_name(MODULE_MAP_NAME).read_text(), modules)
    return out_file.read_text(), source_map


def _bundle_arguments(binary: Path, target: str, output_format: str) -> list[str]:
    return [
        str(binary),
        ENTRY_MODULE,
        "--bundle",
        f"--format={output_format}",
        f"--target={target}",
        "--platform=browser",
        "--legal-comments=none",
        "--charset=ascii",
        "--log-level=warning",
        "--color=false",
    ]


def _name_origins(message: str, modules: list[RenderedModule]) -> str:
    """Point esbuild's file:line references at the template or static file each module came from."""
    for module in modules:
        message = re.sub(
            rf"(?<![\w./-]){re.escape(module.name)}:(\d+)", rf"{module.origin} (rendered as {module.name}):\1", message
        )
    return message


def _relabel_sources(source_map_text: str, modules: list[RenderedModule]) -> str:
    """Name each source after the template or static file it came from, not the temporary render dir."""
    origins = {module.name: module.origin for module in modules}
    source_map = json.loads(source_map_text)
    source_map["sources"] = [origins.get(Path(source).name, Path(source).name) for source in source_map["sources"]]
    return json.dumps(source_map, separators=(",", ":"))


def _run(command: list[str], cwd: Path | None) -> str:
    try:
        process = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=ESBUILD_TIMEOUT_SECONDS, check=False
        )
    except OSError as error:
        raise BundleError(f"could not run {command[0]}: {error}") from error
    except subprocess.TimeoutExpired as error:
        raise BundleError(f"{command[0]} did not finish within {ESBUILD_TIMEOUT_SECONDS} s") from error
    if process.returncode != 0:
        detail = (process.stderr or process.stdout).strip()
        raise BundleError(f"esbuild failed (exit {process.returncode}):\n{detail}")
    return process.stdout
