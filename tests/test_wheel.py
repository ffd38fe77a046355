"""The package as users install it: a wheel in a fresh virtualenv, run from a folder outside the checkout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

from generator.pipeline import build

CHECKOUT = Path(__file__).resolve().parent.parent
CONFIG = CHECKOUT / "tests" / "configs" / "every-feature.toml"


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


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
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


def test_the_wheel_is_tagged_for_the_platform_and_carries_esbuild_and_its_license(installed: Installed) -> None:
    assert re.fullmatch(
        r"segment_pendo-[\d.]+-py3-none-manylinux_2_17_x86_64\.musllinux_1_1_x86_64\.whl", installed.wheel.name
    )
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
        binary = archive.getinfo("generator/_bin/esbuild")
        assert binary.external_attr >> 16 & 0o111, "the esbuild binary must be executable"
        assert (
            archive.read("generator/_bin/esbuild")
            == (CHECKOUT / "node_modules/@esbuild/linux-x64/bin/esbuild").read_bytes()
        )
        assert (
            archive.read("generator/_bin/esbuild-LICENSE.md")
            == (CHECKOUT / "node_modules/esbuild/LICENSE.md").read_bytes()
        )
        metadata = Parser().parsestr(archive.read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode())
        wheel_info = archive.read(next(n for n in names if n.endswith("dist-info/WHEEL"))).decode()
    assert "Root-Is-Purelib: false" in wheel_info
    assert {
        "generator/_assets/site_demo/index.html",
        "generator/_assets/examples/every-feature.toml",
        "generator/_assets/vendor/analytics-next/standalone.js",
        "generator/_assets/templates/main.js.jinja",
        "generator/py.typed",
    } <= names
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names)
    assert any(name.endswith("extra_metadata/licenses/esbuild-LICENSE.md") for name in names)
    assert not any("node_modules" in name or "/build/" in name or "@pendo" in name for name in names)
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Author-email"]
    assert "Programming Language :: Python :: 3.11" in metadata.get_all("Classifier", [])
    assert {url.split(",")[0] for url in metadata.get_all("Project-URL", [])} >= {"Homepage", "Documentation", "Issues"}
    assert set(metadata.get_all("Provides-Extra", [])) >= {"relay", "bench"}


def test_build_outside_the_checkout_without_node_is_byte_for_byte_the_checkouts(
    installed: Installed, tmp_path: Path
) -> None:
    (installed.work / "pendo.toml").write_text(CONFIG.read_text())
    process = installed.run("build", "--config", "pendo.toml", "--out", "dist")
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr and "warning" not in process.stderr
    reference = build(CONFIG, tmp_path / "reference")
    produced = json.loads((installed.work / "dist" / "manifest.json").read_text())
    assert produced["esbuild_version"] == "esbuild 0.28.2"
    for name in ("segment-pendo.min.js", "segment-pendo.js", "segment-pendo.min.js.map", reference["entry"]):
        assert (installed.work / "dist" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    assert produced["entry"] == reference["entry"]
    assert f'<script src="/{reference["entry"]}"' in process.stdout


def test_the_console_script_names_itself(installed: Installed) -> None:
    process = installed.run("--help")
    assert process.returncode == 0
    assert process.stdout.startswith("usage: segment-pendo ")
    typo = installed.run("biuld")
    assert typo.returncode == 2
    assert typo.stderr.startswith("segment-pendo: error: argument COMMAND: invalid choice: 'biuld'")
    assert "did you mean 'build'?" in typo.stderr


def test_extras_missing_is_one_line_saying_what_to_install(installed: Installed) -> None:
    (installed.work / "pendo.toml").write_text(CONFIG.read_text())
    relay = installed.run("relay", "--config", "pendo.toml")
    assert (relay.returncode, relay.stderr) == (
        1,
        "error: the relay needs starlette, uvicorn, aiohttp, httptools: pip install 'segment-pendo[relay]'\n",
    )
    bench = installed.run("bench")
    assert bench.returncode == 1
    assert bench.stderr.startswith("error: bench needs brotli and playwright: pip install 'segment-pendo[bench]'")


def test_dead_letters_work_from_the_wheel_without_the_relay_extra(installed: Installed, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    # An outbox as a relay leaves it: one event Pendo refused (the outbox module needs only the standard library).
    script = (
        "import sys; from pathlib import Path; from generator.relay.outbox import *; "
        "o = SqliteOutbox(Path(sys.argv[1])); o.add_many([NewEvent('m-1', 'track', '{}', 0)]); "
        "o.claim('track', 1, 60); o.settle([DeadLetter('m-1', 400, 'refused')]); o.close()"
    )
    subprocess.run([str(installed.venv / "bin" / "python"), "-c", script, str(outbox)], check=True, cwd=tmp_path)
    listing = installed.run("dead-letters", "list", "--db", str(outbox), "--json")
    assert listing.returncode == 0, listing.stderr
    assert [(item["messageId"], item["kind"], item["status"]) for item in json.loads(listing.stdout)] == [
        ("m-1", "track", 400)
    ]
    replay = installed.run("dead-letters", "replay", "--db", str(outbox), "--message-id", "m-1")
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout == f"replayed 1 dead letter into {outbox}; relays deliver them\n"
    missing = installed.run("dead-letters", "list", "--db", str(tmp_path / "nowhere.sqlite3"))
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1), missing.stderr


def test_bench_finds_its_configs_and_pages_in_the_package(installed: Installed) -> None:
    check = (
        "from generator import bench, paths\n"
        "names = sorted(path.stem for path in bench.EXAMPLE_CONFIGS if path.is_file())\n"
        "assert paths.INSTALLED and (paths.SITE_DIR / 'bench.html').is_file()\n"
        "assert (paths.ANALYTICS_NEXT_DIR / 'standalone.js').is_file()\n"
        "print(' '.join(names))\n"
    )
    process = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", check],
        cwd=installed.work,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    expected = sorted([*(path.stem for path in (CHECKOUT / "tests" / "configs").glob("*.toml")), "demo"])
    assert process.stdout.split() == expected


@pytest.fixture
def served(installed: Installed) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    (installed.work / "pendo.toml").write_text('[pendo]\napi_key = "k-served"\nregion = "eu"\n')
    process = subprocess.Popen(
        [str(installed.command), "serve", "--config", "pendo.toml", "--port", "0"],
        cwd=installed.work,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+/) \(builds in (\S+);", line)
    assert match, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
    yield match.group(1), process, Path(match.group(2))
    if process.poll() is None:
        process.kill()
        process.wait()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serve_works_from_the_wheel_and_writes_nothing_into_site_packages(
    installed: Installed, served: tuple[str, subprocess.Popen[str], Path]
) -> None:
    url, process, builds = served
    assert builds.is_dir() and installed.site_packages not in builds.parents
    before = sorted(str(path) for path in installed.site_packages.rglob("*") if "__pycache__" not in path.parts)
    status, page = get(url)
    assert status == 200 and b"segment-pendo demo" in page
    status, script = get(url + "build/segment-pendo.min.js")
    assert status == 200 and script.startswith(b"(()=>{")
    status, analytics = get(url + "segment-cdn/analytics.js/v1/demo_write_key/analytics.min.js")
    assert status == 200 and len(analytics) > 50_000
    state = json.loads(get(url + "demo/state")[1])
    assert state["region"] == "eu" and state["config"] == "pendo.toml" and state["agentMissing"] is True
    status, agent = get(url + "agent/static/current/pendo.js")
    assert status == 404 and b"npm install @pendo/agent@" in agent
    # With the agent's npm package in the folder serve runs from, the real agent is served for the config's region.
    (installed.work / "node_modules" / "@pendo").mkdir(parents=True)
    (installed.work / "node_modules" / "@pendo" / "agent").symlink_to(CHECKOUT / "node_modules" / "@pendo" / "agent")
    status, agent = get(url + "agent/static/current/pendo.js")
    assert status == 200 and b'"env": "prod-eu"' in agent and b'"apiKey": "k-served"' in agent
    after = sorted(str(path) for path in installed.site_packages.rglob("*") if "__pycache__" not in path.parts)
    assert after == before
    # Stopped as a service manager stops it (SIGTERM, handled as Ctrl-C): a clean exit, the temporary builds gone.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert not builds.exists()
    assert set(os.listdir(installed.work)) <= {"dist", "node_modules", "pendo.toml"}
