"""Wheel build hook: put the pinned esbuild binary and analytics.js 2.0 for the demo into the package.

Both come from the npm packages `npm ci` installed (`esbuild` and `@segment/analytics-next`, pinned in
package.json), so the wheel bundles with exactly the esbuild the checkout's tests ran. The binary makes
the wheel platform-specific: it is tagged for the platform whose `@esbuild/<platform>` package it carries.
Editable installs carry nothing: they find the checkout's own node_modules.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# (sys.platform, machine) → (esbuild's npm platform package, the wheel's platform tag). esbuild's binaries
# are statically linked, so one Linux wheel serves glibc and musl systems alike.
ESBUILD_PLATFORMS = {
    ("linux", "x86_64"): ("linux-x64", "manylinux_2_17_x86_64.musllinux_1_1_x86_64"),
    ("linux", "aarch64"): ("linux-arm64", "manylinux_2_17_aarch64.musllinux_1_1_aarch64"),
    ("darwin", "x86_64"): ("darwin-x64", "macosx_10_13_x86_64"),
    ("darwin", "arm64"): ("darwin-arm64", "macosx_11_0_arm64"),
    ("win32", "amd64"): ("win32-x64", "win_amd64"),
    ("win32", "arm64"): ("win32-arm64", "win_arm64"),
}
NPM_FIRST = "run `npm ci` in the checkout first (the wheel carries the esbuild binary npm installs)"


class EsbuildBinaryHook(BuildHookInterface[BuilderConfig]):
    """Adds node_modules/@esbuild/<platform>'s binary, its license, and analytics-next's browser build."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Called by hatchling before a wheel is built."""
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        node_modules = root / "node_modules"
        key = (sys.platform, platform.machine().lower())
        if key not in ESBUILD_PLATFORMS:
            raise RuntimeError(
                f"no esbuild wheel for {key[0]} on {key[1]}; build on one of {sorted(ESBUILD_PLATFORMS)}"
            )
        package, wheel_platform = ESBUILD_PLATFORMS[key]
        pinned = json.loads((root / "package.json").read_text())["dependencies"]["esbuild"]
        package_dir = node_modules / "@esbuild" / package
        manifest = package_dir / "package.json"
        if not manifest.is_file():
            raise RuntimeError(f"{package_dir} is missing: {NPM_FIRST}")
        installed = json.loads(manifest.read_text())["version"]
        if installed != pinned:
            raise RuntimeError(f"{package_dir} is esbuild {installed}, package.json pins {pinned}: {NPM_FIRST}")
        windows = package.startswith("win32")
        binary = package_dir / ("esbuild.exe" if windows else "bin/esbuild")
        if not (binary.is_file() and (windows or os.access(binary, os.X_OK))):
            raise RuntimeError(f"{binary} is missing or not executable: {NPM_FIRST}")
        license_file = node_modules / "esbuild" / "LICENSE.md"
        force_include = build_data["force_include"]
        force_include[str(binary)] = "generator/_bin/" + binary.name
        force_include[str(license_file)] = "generator/_bin/esbuild-LICENSE.md"
        build_data["extra_metadata"][str(license_file)] = "licenses/esbuild-LICENSE.md"
        self._include_analytics_next(node_modules / "@segment" / "analytics-next", build_data)
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{wheel_platform}"

    def _include_analytics_next(self, package_dir: Path, build_data: dict[str, Any]) -> None:
        """The demo and bench serve analytics.js 2.0 locally: its standalone build and the chunks it loads."""
        umd = package_dir / "dist" / "umd"
        scripts = sorted(umd.glob("*.js"))
        if not scripts:
            raise RuntimeError(f"{umd} has no scripts: {NPM_FIRST}")
        target = "generator/_assets/vendor/analytics-next/"
        for script in scripts:
            build_data["force_include"][str(script)] = target + script.name
        build_data["force_include"][str(package_dir / "LICENSE.MD")] = target + "LICENSE.md"
