"""`segment-pendo verify URL` against pages served on this machine, with Segment and Pendo answered locally."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.paths import SITE_DIR
from generator.pipeline import build
from tests.support.static_site import serving_folder

SNIPPET = '<script src="/segment-snippet.js" data-write-key="wk_verify"></script>'
TAG = '<script src="/segment-pendo.min.js" integrity="{sri}" crossorigin="anonymous"></script>'
CALLS = "<script>analytics.identify('u-1', {plan: 'pro'}); analytics.group('acme'); analytics.track('Saved');</script>"
PAGES = {
    "good.html": SNIPPET + TAG + CALLS,
    "no-analytics.html": TAG,
    "no-tag.html": SNIPPET + CALLS,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("verify-site")
    (folder / "pendo.toml").write_text('[pendo]\napi_key = "verify-key"\n')
    (folder / "other.toml").write_text('[pendo]\napi_key = "another-key"\n')
    manifest = build(folder / "pendo.toml", folder / "build")
    shutil.copy(folder / "build" / "segment-pendo.min.js", folder / "segment-pendo.min.js")
    shutil.copy(SITE_DIR / "segment-snippet.js", folder / "segment-snippet.js")
    sri = manifest["files"]["segment-pendo.min.js"]["sri"]
    for name, body in PAGES.items():
        (folder / name).write_text(
            f"<!doctype html><html><head>{body.replace('{sri}', sri)}</head><body></body></html>"
        )
    with serving_folder(folder) as origin:
        yield origin, folder


def verify(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator", "verify", *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.browser
def test_a_good_page_passes_its_expectations_and_says_what_it_saw(site: tuple[str, Path]) -> None:
    origin, folder = site
    result = verify(
        folder, f"{origin}/good.html", "--offline", "--config", "pendo.toml", "--expect-visitor", "u-1",
        "--expect-account", "acme", "--wait", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("analytics.js: loaded, version ") and lines[0].endswith(" at window.analytics")
    assert lines[1].startswith(f"segment-pendo script: {origin}/segment-pendo.min.js (SRI sha384-")
    assert lines[1].endswith("; the build of --config); connected to analytics.js")
    assert lines[2].startswith("Pendo agent: https://cdn.pendo.io/agent/static/verify-key/pendo.js (agent 2.")
    assert lines[2].endswith("), answered locally by the real agent")
    assert lines[3] == "pendo visitor: u-1; account: acme"
    assert lines[4:] == ["console errors: none", "CSP violations: none", "track events sent to Pendo: 'Saved'"]
    assert result.stderr == ""


@pytest.mark.browser
def test_failed_expectations_and_another_build_are_one_line_each(site: tuple[str, Path]) -> None:
    origin, folder = site
    result = verify(
        folder, f"{origin}/good.html", "--offline", "--config", "other.toml", "--expect-visitor", "u-2",
        "--wait", "1", "--json",
    )  # fmt: skip
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["visitor"] == "u-1" and report["script_matches_config"] is False
    assert report["failures"] == [
        "the segment-pendo script on the page is not the build of --config",
        "expected visitor 'u-2', Pendo has 'u-1'",
    ]


@pytest.mark.browser
def test_a_page_without_analytics_js_names_the_global_and_the_fixes(site: tuple[str, Path]) -> None:
    origin, folder = site
    result = verify(folder, f"{origin}/no-analytics.html", "--offline", "--wait", "1")
    assert result.returncode == 1
    assert "FAIL: no analytics.js client at window.analytics" in result.stdout
    assert "found no analytics.js client at window.analytics: assign it (window.analytics = analytics)" in result.stdout


@pytest.mark.browser
def test_a_page_without_the_script_says_so(site: tuple[str, Path]) -> None:
    origin, folder = site
    result = verify(folder, f"{origin}/no-tag.html", "--offline", "--wait", "1", "--expect-visitor", "u-1")
    assert result.returncode == 1
    assert "segment-pendo script: not on the page" in result.stdout
    assert "Pendo agent: not loaded" in result.stdout
    assert "FAIL: expected visitor 'u-1', Pendo has None" in result.stdout


def test_a_url_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = verify(tmp_path, f"http://127.0.0.1:{port}/", "--wait", "0")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: http://127.0.0.1:{port}/ did not load: ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
