"""The package as users install it: a wheel in a fresh virtualenv, run from a folder outside the checkout."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from generator.pipeline import build
from tests.support.installed_wheel import CHECKOUT, Installed

CONFIG = CHECKOUT / "tests" / "configs" / "every-feature.toml"


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


def test_the_es_module_builds_outside_the_checkout_as_in_it(installed: Installed, tmp_path: Path) -> None:
    (installed.work / "pendo.toml").write_text(CONFIG.read_text())
    out = tmp_path / "app" / "src" / "segment-pendo"
    process = installed.run("build", "--config", "pendo.toml", "--out", str(out), "--format", "esm")
    assert process.returncode == 0, process.stderr
    assert "import { pendoPlugin } from './segment-pendo/segment-pendo.mjs';" in process.stdout
    build(CONFIG, tmp_path / "reference", output_format="esm")
    for name in ("segment-pendo.mjs", "segment-pendo.d.mts"):
        produced = (out / name).read_bytes()
        assert produced == (tmp_path / "reference" / name).read_bytes(), name


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
    # Without npm's agent where serve runs, the page gets the test kit's recording stand-in.
    status, agent = get(url + "agent/static/current/pendo.js")
    assert status == 200 and b"segment-pendo-stand-in" in agent and b'"stand-in" agent' in agent
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


def test_version_schema_and_build_prefix_from_the_wheel(installed: Installed) -> None:
    import generator
    from generator.schema import config_schema

    with zipfile.ZipFile(installed.wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(archive.read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode())
    assert metadata["Version"] == generator.__version__
    assert installed.run("--version").stdout == f"segment-pendo {generator.__version__}\n"
    schema = installed.run("schema", "--out", "segment-pendo.schema.json")
    assert schema.returncode == 0, schema.stderr
    assert json.loads((installed.work / "segment-pendo.schema.json").read_text()) == config_schema()
    assert installed.run("schema", "--help").returncode == 0
    mistake = installed.run("schema", "--out", "missing/schema.json")
    assert (mistake.returncode, mistake.stdout) == (1, "")
    assert (
        mistake.stderr
        == "error: --out missing/schema.json: the folder missing does not exist; create it or pass another path\n"
    )
    assert not (installed.work / "missing").exists()
    (installed.work / "pendo.toml").write_text(CONFIG.read_text())
    built = installed.run("build", "--config", "pendo.toml", "--out", "sp", "--prefix", "/static/segment-pendo")
    assert built.returncode == 0, built.stderr
    entry = json.loads((installed.work / "sp" / "manifest.json").read_text())["entry"]
    assert f'<script src="/static/segment-pendo/{entry}"' in built.stdout
    assert f"serve the files in sp/ at /static/segment-pendo/ (the script is /static/segment-pendo/{entry})" in (
        built.stdout
    )


def test_build_watch_from_the_wheel_stops_cleanly_on_ctrl_c(installed: Installed) -> None:
    (installed.work / "watched.toml").write_text(CONFIG.read_text())
    process = subprocess.Popen(
        [str(installed.command), "build", "--config", "watched.toml", "--out", "watched", "--watch"],
        cwd=installed.work,
        env={**installed.env(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "watching watched.toml" in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopped watching" in stdout and "Traceback" not in stderr
    assert (installed.work / "watched" / "manifest.json").is_file()


def test_audiences_list_runs_from_the_wheel_without_the_relay_extra(installed: Installed) -> None:
    from generator.relay.outbox import NewEvent, SqliteOutbox

    folder = installed.work / "audiences"
    folder.mkdir()
    try:
        (folder / "aud.toml").write_text('[pendo]\napi_key = "k-1"\n[audiences.segments]\nvip = "seg-1"\n')
        outbox = SqliteOutbox(folder / "relay.sqlite3")
        body = '{"audience":"trial","visitor":"u-1","member":true}'
        outbox.add_many([NewEvent("m-1#audience", "audiences", body, 0)])
        outbox.close()
        listed = installed.run("audiences", "list", "--config", "audiences/aud.toml", "--db", "audiences/relay.sqlite3")
        assert listed.returncode == 0, listed.stderr
        assert [line.split()[:5] for line in listed.stdout.splitlines()[1:]] == [
            ["trial", "(none", "yet)", "0", "0"],
            ["vip", "seg-1", "0", "0", "0"],
        ]
        missing = installed.run("audiences", "list", "--config", "audiences/aud.toml", "--db", "nowhere.sqlite3")
        assert (missing.returncode, missing.stderr) == (
            3,
            "error: --db nowhere.sqlite3: no such file; pass the --db the relay runs with\n",
        )
    finally:
        shutil.rmtree(folder)


@pytest.mark.browser
def test_the_demo_from_the_wheel_in_an_empty_folder_loads_without_a_failed_request_or_console_error(
    installed: Installed, tmp_path: Path, page: Page
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    process = subprocess.Popen(
        [str(installed.command), "serve", "--port", "0"],
        cwd=empty,
        env={**installed.env(), "HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _demo_loads_cleanly(process, page)
    finally:
        process.kill()
        process.wait()
    assert os.listdir(empty) == []


def _demo_loads_cleanly(process: subprocess.Popen[str], page: Page) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+/) ", line)
    assert match, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
    assert "npm" not in line and "checkout" not in line
    url = match.group(1)
    failures: list[str] = []
    page.on("requestfailed", lambda request: failures.append(f"failed: {request.url}"))

    def answered(response: Response) -> None:
        if response.status >= 400:
            failures.append(f"{response.status}: {response.url}")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            failures.append(f"console: {message.text}")

    page.on("response", answered)
    page.on("console", console)
    page.on("pageerror", lambda error: failures.append(f"page error: {error}"))
    page.goto(url)
    notice = page.locator("#agent-missing")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("recording stand-in")
    expect(page.locator("#pendo-log")).to_contain_text("pendo.initialize", timeout=15_000)
    page.evaluate("() => analytics.identify('u-wheel', { plan: 'pro' })")
    expect(page.locator("#pendo-log")).to_contain_text("pendo.identify", timeout=15_000)
    expect(page.locator("#pendo-log")).to_contain_text("u-wheel")
    page.wait_for_timeout(500)
    assert failures == []
