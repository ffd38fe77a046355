"""The package as users install it: the wheel built once per run, installed into fresh virtualenvs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv with the wheel installed (no extras), and a working folder outside the checkout."""

    wheel: Path
    venv: Path
    work: Path

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "segment-pendo"

    @property
    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    def env(self) -> dict[str, str]:
        """No node, npm or esbuild reachable: PATH holds only the virtualenv's scripts."""
        return {"PATH": str(self.venv / "bin"), "HOME": str(self.work), "LANG": "C.UTF-8"}

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.command), *arguments],
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel (no extras) in a fresh virtualenv."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(root),
            str(CHECKOUT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(root.glob("*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # pip's cache (and the machine's find-links) hold the dependencies already: no download in the usual case.
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True
    )
    work = root / "elsewhere"
    work.mkdir()
    return Installed(wheel, venv, work)
