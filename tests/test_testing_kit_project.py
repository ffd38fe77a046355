"""The test kit as a team uses it: the wheel with its `testing` extra in a fresh virtualenv, and a sample
project of their own (pages, config, tests) in a folder outside the checkout, run with pytest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from generator.chromium import CHROMIUM_FLAGS, chromium_executable
from tests.support.installed_wheel import CHECKOUT, Installed

PAGE = """<!doctype html><html><head><title>{title}</title>
<script src="/js/segment-snippet.js" data-write-key="wk_team"></script>
{tag}
<script>{code}</script></head><body>{title}</body></html>
"""
LOGIN = "analytics.identify('u-1', { plan: 'pro' }); analytics.group('acme', { name: 'Acme' }); analytics.track('Logged In');"
CONFTEST = f"""
import functools, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {{**browser_type_launch_args, "executable_path": {chromium_executable()!r}, "args": {CHROMIUM_FLAGS!r}}}


@pytest.fixture(scope="session")
def app():
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(Path(__file__).parent / "site"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{{server.server_address[1]}}"
    server.shutdown()
"""
TESTS = """
def test_login(page, pendo, segment, app):
    page.goto(app + "/login.html")
    pendo.expect_visitor("u-1", plan="pro", timeout=15)
    pendo.expect_account("acme", name="Acme")
    pendo.expect_event("Logged In")
    segment.expect_event("identify", userId="u-1", traits={"plan": "pro"})
    print("AGENT", pendo.agent)


def test_traits_reach_pendo(page, pendo, app):
    page.goto(app + "/traits-lost.html")
    pendo.expect_visitor("u-1", plan="pro", timeout=8)


def test_tagged(page, pendo, app):
    page.goto(app + "/untagged.html")
    pendo.expect_visitor("u-1", timeout=3)
"""


@pytest.fixture(scope="module")
def kit(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel with its testing extra (pytest, pytest-playwright) in its own virtualenv."""
    venv = tmp_path_factory.mktemp("kit") / "venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{installed.wheel}[testing]"],
        check=True,
        capture_output=True,
    )
    return venv


def _project(kit: Path, root: Path, ini_extra: str) -> Path:
    project = root / "team-app"
    (project / "site" / "js").mkdir(parents=True)
    (project / "pendo.toml").write_text('[pendo]\napi_key = "team-key-1"\nregion = "eu"\n')
    env = {"PATH": f"{kit / 'bin'}:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}
    built = subprocess.run(
        [str(kit / "bin" / "segment-pendo"), "build", "--config", "pendo.toml", "--out", "site/js"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    shutil.copy(CHECKOUT / "site_demo" / "segment-snippet.js", project / "site" / "js" / "segment-snippet.js")
    tag = '<script src="/js/segment-pendo.min.js"></script>'
    pages = {
        "login.html": (tag, LOGIN),
        "traits-lost.html": (tag, "analytics.identify('u-1');"),
        "untagged.html": ("", LOGIN),
    }
    for name, (page_tag, code) in pages.items():
        (project / "site" / name).write_text(PAGE.format(title=name, tag=page_tag, code=code))
    (project / "pytest.ini").write_text(f"[pytest]\nsegment_pendo_config = pendo.toml\n{ini_extra}")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_pages.py").write_text(TESTS)
    return project


def _pytest(kit: Path, project: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{kit / 'bin'}:/usr/bin:/bin", "HOME": str(project.parent), "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(kit / "bin" / "python"), "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.browser
@pytest.mark.parametrize("agent", ["real", "stand-in"])
def test_a_teams_suite_passes_a_good_page_and_fails_the_regressions_saying_why(
    kit: Path, tmp_path: Path, agent: str
) -> None:
    if agent == "real":
        # As a team with the agent in its own node_modules: the kit finds it from the rootdir.
        modules = tmp_path / "team-app" / "node_modules" / "@pendo"
        modules.mkdir(parents=True)
        (modules / "agent").symlink_to(CHECKOUT / "node_modules" / "@pendo" / "agent")
    project = _project(kit, tmp_path, "")
    result = _pytest(kit, project)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 passed" in output and "2 failed" in output, output
    assert f"AGENT {agent}" in output, output
    assert "PASSED" not in output or "test_login" in output
    assert f"Pendo's visitor is not the expected one after 8 s ({agent} agent)" in output, output
    assert "plan: expected 'pro', missing" in output, output
    assert "the page never requested Pendo's agent" in output, output
    assert "Traceback" not in output


def test_the_plugin_loads_light_and_leaves_other_suites_alone(kit: Path, tmp_path: Path) -> None:
    python = str(kit / "bin" / "python")
    light = "import sys, generator.testing.plugin; heavy = [m for m in sys.modules if m.split('.')[0] in ('playwright', 'pydantic', 'jinja2') or m.startswith('generator.testing.network')]; print(heavy)"
    assert subprocess.run([python, "-c", light], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    result = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:playwright"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
    listed = subprocess.run(
        [python, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "pendo --" in listed.stdout and "segment --" in listed.stdout, listed.stdout[-2000:]
