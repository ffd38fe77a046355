"""`python hatch_build.py --all-platforms`: five wheels, each tagged for its platform and carrying that platform's
official esbuild binary (only one of which can run here, so each binary's header is read instead).

The @esbuild packages come from npm's cache (tests/setup.sh puts them there), so the test reaches no network.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent

ELF_MACHINES = {"x86_64": 0x3E, "aarch64": 0xB7}
MACHO_CPUS = {"x86_64": 0x01000007, "arm64": 0x0100000C}
PE_MACHINES = {"amd64": 0x8664}
# wheel platform tag → (binary in the wheel, executable format, architecture)
EXPECTED = {
    "manylinux_2_17_x86_64.musllinux_1_1_x86_64": ("generator/_bin/esbuild", "elf", "x86_64"),
    "manylinux_2_17_aarch64.musllinux_1_1_aarch64": ("generator/_bin/esbuild", "elf", "aarch64"),
    "macosx_10_13_x86_64": ("generator/_bin/esbuild", "macho", "x86_64"),
    "macosx_11_0_arm64": ("generator/_bin/esbuild", "macho", "arm64"),
    "win_amd64": ("generator/_bin/esbuild.exe", "pe", "amd64"),
}


def binary_kind(data: bytes) -> tuple[str, str]:
    """(format, architecture) read from an executable's header."""
    if data[:4] == b"\x7fELF":
        assert data[4] == 2 and data[5] == 1, "64-bit little-endian ELF"
        (machine,) = struct.unpack_from("<H", data, 18)
        return "elf", {value: name for name, value in ELF_MACHINES.items()}.get(machine, hex(machine))
    if data[:4] == b"\xcf\xfa\xed\xfe":
        (cpu,) = struct.unpack_from("<I", data, 4)
        return "macho", {value: name for name, value in MACHO_CPUS.items()}.get(cpu, hex(cpu))
    if data[:2] == b"MZ":
        (offset,) = struct.unpack_from("<I", data, 0x3C)
        assert data[offset : offset + 4] == b"PE\0\0"
        (machine,) = struct.unpack_from("<H", data, offset + 4)
        return "pe", {value: name for name, value in PE_MACHINES.items()}.get(machine, hex(machine))
    return "unknown", data[:4].hex()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    process = subprocess.run(
        [sys.executable, str(CHECKOUT / "hatch_build.py"), "--all-platforms", "--out", str(out), "--offline"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert process.returncode == 0, f"{process.stderr}\n(tests/setup.sh puts the @esbuild packages in npm's cache)"
    built = sorted(out.glob("*.whl"))
    assert sorted(Path(line) for line in process.stdout.split()) == built
    return {wheel.name.removesuffix(".whl").split("-py3-none-")[1]: wheel for wheel in built}


def test_one_wheel_per_promised_platform(wheels: dict[str, Path]) -> None:
    assert sorted(wheels) == sorted(EXPECTED)


@pytest.mark.parametrize("tag", sorted(EXPECTED))
def test_each_wheel_is_tagged_for_its_platform_and_carries_its_esbuild(tag: str, wheels: dict[str, Path]) -> None:
    binary_name, kind, architecture = EXPECTED[tag]
    with zipfile.ZipFile(wheels[tag]) as archive:
        names = set(archive.namelist())
        wheel_info = archive.read(next(name for name in names if name.endswith("dist-info/WHEEL"))).decode()
        binaries = {name for name in names if name.startswith("generator/_bin/esbuild") and "LICENSE" not in name}
        assert binaries == {binary_name}
        data = archive.read(binary_name)
        mode = archive.getinfo(binary_name).external_attr >> 16
        assert "generator/_bin/esbuild-LICENSE.md" in names
        assert "generator/_assets/vendor/analytics-next/standalone.js" in names
    assert "Root-Is-Purelib: false" in wheel_info
    assert {line.removeprefix("Tag: ") for line in wheel_info.splitlines() if line.startswith("Tag: ")} == {
        f"py3-none-{part}" for part in tag.split(".")
    }
    assert binary_kind(data) == (kind, architecture)
    if kind != "pe":
        assert mode & 0o111, "the binary must be executable"
    assert len(data) > 1_000_000


def test_the_build_machines_wheel_carries_the_very_binary_npm_installed(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["manylinux_2_17_x86_64.musllinux_1_1_x86_64"]) as archive:
        carried = archive.read("generator/_bin/esbuild")
    assert carried == (CHECKOUT / "node_modules" / "@esbuild" / "linux-x64" / "bin" / "esbuild").read_bytes()


def test_a_tarball_that_does_not_match_the_lockfile_is_refused(tmp_path: Path) -> None:
    sys.path.insert(0, str(CHECKOUT))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(CHECKOUT))
    locked = json.loads((CHECKOUT / "package-lock.json").read_text())["packages"]
    entry = dict(locked["node_modules/@esbuild/darwin-arm64"])
    entry["integrity"] = "sha512-" + "A" * 86 + "=="
    tampered = {**locked, "node_modules/@esbuild/darwin-arm64": entry}
    with pytest.raises(RuntimeError, match=r"is not package-lock\.json's"):
        hatch_build._fetch_esbuild_package("darwin-arm64", entry["version"], tampered, tmp_path, offline=True)


def _release(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKOUT / "hatch_build.py"), *arguments],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_without_the_packages_it_says_where_they_come_from_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    empty_cache = {**os.environ, "npm_config_cache": str(tmp_path / "empty-npm-cache")}
    process = _release("--all-platforms", "--out", str(out), "--offline", env=empty_cache)
    assert process.returncode == 1
    assert process.stderr.count("\n") == 1 and "Traceback" not in process.stderr
    assert "npm pack @esbuild/linux-x64@" in process.stderr
    assert "npm's cache (run tests/setup.sh, or drop --offline)" in process.stderr
    assert not out.exists()


def test_release_command_mistakes(tmp_path: Path) -> None:
    assert _release("--help").returncode == 0
    missing = _release()
    assert missing.returncode == 2 and "required: --all-platforms" in missing.stderr
    (tmp_path / "a-file").write_text("")
    on_file = _release("--all-platforms", "--out", str(tmp_path / "a-file"), "--offline")
    assert on_file.returncode == 1
    assert (
        on_file.stderr
        == f"error: --out {tmp_path / 'a-file'} is a file, not a folder; pass a folder (it is created if missing); no wheel written\n"
    )
