"""Where `build` finds esbuild in npm's node_modules: on Windows npm's .bin has only wrappers, never esbuild.exe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generator import bundle


def _node_modules(root: Path, *files: str) -> Path:
    for name in files:
        path = root / "node_modules" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"MZ")
        path.chmod(0o755)
    project = root / "project" / "src"
    project.mkdir(parents=True)
    return project


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "WINDOWS", True)
    monkeypatch.setattr("platform.machine", lambda: "AMD64")
    monkeypatch.delenv("ESBUILD_BINARY_PATH", raising=False)
    # Only the folders under test: not the checkout's own node_modules, nothing on PATH.
    monkeypatch.setattr(bundle, "NODE_MODULES", Path("/nonexistent/node_modules"))
    monkeypatch.setenv("PATH", "")


def test_on_windows_the_platform_packages_exe_is_found_in_a_parents_node_modules(windows: None, tmp_path: Path) -> None:
    start = _node_modules(
        tmp_path, ".bin/esbuild", ".bin/esbuild.cmd", ".bin/esbuild.ps1", "@esbuild/win32-x64/esbuild.exe"
    )
    assert bundle.find_esbuild(start) == tmp_path / "node_modules" / "@esbuild" / "win32-x64" / "esbuild.exe"


def test_on_windows_the_cmd_wrapper_is_the_fallback(windows: None, tmp_path: Path) -> None:
    start = _node_modules(tmp_path, ".bin/esbuild", ".bin/esbuild.cmd")
    assert bundle.find_esbuild(start) == tmp_path / "node_modules" / ".bin" / "esbuild.cmd"


def test_on_windows_arm_the_arm_package_is_looked_for(
    windows: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("platform.machine", lambda: "ARM64")
    start = _node_modules(tmp_path, "@esbuild/win32-x64/esbuild.exe", "@esbuild/win32-arm64/esbuild.exe")
    assert bundle.find_esbuild(start) == tmp_path / "node_modules" / "@esbuild" / "win32-arm64" / "esbuild.exe"


def test_on_windows_a_shell_script_alone_is_not_taken_for_esbuild(windows: None, tmp_path: Path) -> None:
    start = _node_modules(tmp_path, ".bin/esbuild")
    assert bundle.find_esbuild(start) is None


@pytest.mark.skipif(os.name == "nt", reason="the POSIX lookup")
def test_elsewhere_npms_bin_link_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESBUILD_BINARY_PATH", raising=False)
    monkeypatch.setattr(bundle, "NODE_MODULES", Path("/nonexistent/node_modules"))
    monkeypatch.setattr(bundle, "INSTALLED", False)
    start = _node_modules(tmp_path, ".bin/esbuild")
    assert bundle.find_esbuild(start) == tmp_path / "node_modules" / ".bin" / "esbuild"
