"""Wheel build hook: put the pinned esbuild binary and analytics.js 2.0 for the demo into the package.

Both come from the npm packages `npm ci` installed (`esbuild` and `@segment/analytics-next`, pinned in
package.json), so the wheel bundles with exactly the esbuild the checkout's tests ran. The binary makes
the wheel platform-specific: it is tagged for the platform whose `@esbuild/<platform>` package it carries.
Editable installs carry nothing: they find the checkout's own node_modules.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
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
# The unpacked @esbuild/<platform> package a wheel for another platform carries (set by build_all_wheels).
TARGET_PACKAGE_ENV = "SEGMENT_PENDO_ESBUILD_PACKAGE"
# The platforms the README promises, one wheel each.
RELEASE_PLATFORMS = ("linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "win32-x64")
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
        target = os.environ.get(TARGET_PACKAGE_ENV)
        if target:
            # A wheel for another platform: that platform's @esbuild package, unpacked (see build_all_wheels).
            package_dir = Path(target)
            package = json.loads((package_dir / "package.json").read_text())["name"].removeprefix("@esbuild/")
            wheel_platform = dict(ESBUILD_PLATFORMS.values()).get(package, "")
            if not wheel_platform:
                raise RuntimeError(f"{TARGET_PACKAGE_ENV}={target}: @esbuild/{package} is not a platform we build")
        else:
            key = (sys.platform, platform.machine().lower())
            if key not in ESBUILD_PLATFORMS:
                raise RuntimeError(
                    f"no esbuild wheel for {key[0]} on {key[1]}; build on one of {sorted(ESBUILD_PLATFORMS)}"
                )
            package, wheel_platform = ESBUILD_PLATFORMS[key]
            package_dir = node_modules / "@esbuild" / package
        pinned = json.loads((root / "package.json").read_text())["dependencies"]["esbuild"]
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


def build_all_wheels(out: Path, *, offline: bool = False) -> list[Path]:
    """One wheel per release platform, each with that platform's official esbuild, into out (all or none).

    Each `@esbuild/<platform>` package is fetched with `npm pack` (npm's registry and cache) at the version
    package.json pins, and its sha512 must equal the integrity package-lock.json records for it.
    """
    if out.exists() and not out.is_dir():
        raise RuntimeError(f"--out {out} is a file, not a folder; pass a folder (it is created if missing)")
    root = Path(__file__).resolve().parent
    pinned = json.loads((root / "package.json").read_text())["dependencies"]["esbuild"]
    locked = json.loads((root / "package-lock.json").read_text())["packages"]
    with tempfile.TemporaryDirectory(prefix="segment-pendo-wheels-") as scratch:
        work = Path(scratch)
        wheels: list[Path] = []
        for package in RELEASE_PLATFORMS:
            package_dir = _fetch_esbuild_package(package, pinned, locked, work, offline=offline)
            built = work / "wheels" / package
            wheel_build = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", built, root],
                check=False,
                capture_output=True,
                text=True,
                env={**os.environ, TARGET_PACKAGE_ENV: str(package_dir)},
            )
            if wheel_build.returncode != 0:
                raise RuntimeError(f"the {package} wheel did not build:\n{wheel_build.stderr.strip()}")
            (wheel,) = built.glob("*.whl")
            wheels.append(wheel)
        out.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copy2(wheel, out / wheel.name)) for wheel in wheels]


def _fetch_esbuild_package(package: str, pinned: str, locked: dict[str, Any], work: Path, *, offline: bool) -> Path:
    entry = locked.get(f"node_modules/@esbuild/{package}")
    if entry is None or entry.get("version") != pinned or not entry.get("integrity"):
        raise RuntimeError(f"package-lock.json has no @esbuild/{package} {pinned} with its integrity: {NPM_FIRST}")
    command = ["npm", "pack", f"@esbuild/{package}@{pinned}", "--json", "--pack-destination", str(work)]
    packed = subprocess.run(
        [*command, *(["--offline"] if offline else [])], check=False, capture_output=True, text=True
    )
    if packed.returncode != 0:
        reason = next((line for line in packed.stderr.splitlines() if line.strip()), "no output")
        where = "npm's cache (run tests/setup.sh, or drop --offline)" if offline else "the npm registry"
        raise RuntimeError(f"npm pack @esbuild/{package}@{pinned} failed ({reason}); it comes from {where}")
    tarball = work / json.loads(packed.stdout)[0]["filename"]
    algorithm, _, expected = entry["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise RuntimeError(f"{tarball.name}: {algorithm} {actual} is not package-lock.json's {expected}")
    unpacked = work / "packages" / package
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "package"


def main(argv: list[str] | None = None) -> int:
    """`python hatch_build.py --all-platforms [--out dist] [--offline]`: the five release wheels."""
    parser = argparse.ArgumentParser(prog="python hatch_build.py", description=main.__doc__)
    parser.add_argument("--all-platforms", action="store_true", required=True, help="build every release wheel")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="folder for the wheels (default dist)")
    parser.add_argument("--offline", action="store_true", help="take the npm packages from npm's cache only")
    arguments = parser.parse_args(argv)
    try:
        wheels = build_all_wheels(arguments.out, offline=arguments.offline)
    except (RuntimeError, OSError) as error:
        print(f"error: {error}; no wheel written", file=sys.stderr)
        return 1
    for wheel in wheels:
        print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
