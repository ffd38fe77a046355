"""The command line contract: outputs, exit codes, messages, and nothing written on failure."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import generator
from generator.cli import main

CONFIGS = Path(__file__).parent / "configs"
STABLE_FILES = {"segment-pendo.min.js", "segment-pendo.js", "segment-pendo.min.js.map", "manifest.json"}
HASHED = re.compile(r"^segment-pendo\.([0-9a-f]{10})\.min\.js$")


def output_names(out: Path) -> set[str]:
    """The stable names, with the content-hashed script and map named by pattern."""
    names = {path.name for path in out.iterdir()}
    hashed = [name for name in names if HASHED.match(name)]
    assert len(hashed) == 1, names
    return (names - {hashed[0], hashed[0] + ".map"}) | {"<hashed>.min.js", "<hashed>.min.js.map"}


OUTPUT_FILES = STABLE_FILES | {"<hashed>.min.js", "<hashed>.min.js.map"}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pendo.toml"
    path.write_text(text)
    return path


def test_build_writes_the_four_files_and_a_manifest_describing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["build", "--config", str(CONFIGS / "minimal.toml"), "--out", str(out)]) == 0
    assert output_names(out) == OUTPUT_FILES
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator_version"] == generator.__version__
    assert manifest["esbuild_version"] == "esbuild 0.28.2"
    assert manifest["config_digest"].startswith("sha256-")
    script = manifest["files"]["segment-pendo.min.js"]
    assert script["bytes"] == (out / "segment-pendo.min.js").stat().st_size
    assert 0 < script["gzip_bytes"] < script["bytes"]
    assert script["sri"].startswith("sha384-")
    entry = manifest["entry"]
    assert HASHED.match(entry) and manifest["files"][entry]["sri"].startswith("sha384-")
    printed = capsys.readouterr().out
    assert f'<script src="/{entry}" integrity="{manifest["files"][entry]["sri"]}" crossorigin="anonymous">' in printed


def test_the_hashed_copy_is_the_same_code_and_links_no_map_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = generator.build(CONFIGS / "minimal.toml", out)
    entry = manifest["entry"]
    stable = (out / "segment-pendo.min.js").read_text()
    assert "sourceMappingURL" not in stable
    assert (out / entry).read_text() == stable
    assert entry == f"segment-pendo.{hashlib.sha256(stable.encode()).hexdigest()[:10]}.min.js"
    assert json.loads((out / f"{entry}.map").read_text())["file"] == entry


def test_the_hashed_copy_is_named_by_its_code_and_points_at_its_own_map(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = generator.build(CONFIGS / "minimal.toml", out, link_map=True)
    entry = manifest["entry"]
    stable = (out / "segment-pendo.min.js").read_text()
    hashed = (out / entry).read_text()
    code, comment = stable.rsplit("//# sourceMappingURL=", 1)
    assert comment == "segment-pendo.min.js.map\n"
    assert hashed == f"{code}//# sourceMappingURL={entry}.map\n"
    assert entry == f"segment-pendo.{hashlib.sha256(code.encode()).hexdigest()[:10]}.min.js"
    hashed_map = json.loads((out / f"{entry}.map").read_text())
    assert hashed_map["file"] == entry
    assert hashed_map["sources"] == json.loads((out / "segment-pendo.min.js.map").read_text())["sources"]
    # The same config builds the same name; another config, another name, and the old one stays for cached pages.
    assert generator.build(CONFIGS / "minimal.toml", out, link_map=True)["entry"] == entry
    other = generator.build(CONFIGS / "eu-cname.toml", out, link_map=True)["entry"]
    assert other != entry and (out / entry).is_file() and (out / other).is_file()


def test_inline_build_writes_a_script_element_and_its_csp_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["build", "--config", str(CONFIGS / "minimal.toml"), "--out", str(out), "--inline"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    element = (out / "segment-pendo.inline.html").read_text()
    code = (out / "segment-pendo.min.js").read_text().rsplit("//# sourceMappingURL=", 1)[0]
    assert element == f"<script>{code}</script>\n"
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert manifest["inline"] == {"file": "segment-pendo.inline.html", "csp_hash": f"'sha256-{digest}'"}
    assert f"script-src 'sha256-{digest}'" in capsys.readouterr().out


def test_bad_config_exits_1_names_every_problem_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '[pendo]\napi_key = "k-1"\nregion = "us"\ncolor = "red"\n')
    out = tmp_path / "out"
    assert main(["build", "--config", str(config), "--out", str(out)]) == 1
    assert not out.exists()
    error = capsys.readouterr().err
    assert error == (
        f"error: {config}: 2 config problems:\n"
        "  pendo.region: 'us' is not one of io, eu, us1, jp, au, gov\n"
        "  pendo.color: unknown key; allowed keys here: api_key, region, content_host, options, nonce\n"
    )


def test_failed_build_leaves_an_existing_good_build_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["build", "--config", str(CONFIGS / "minimal.toml"), "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    bad = write_config(tmp_path, '[pendo]\napi_key = ""\n')
    assert main(["build", "--config", str(bad), "--out", str(out)]) == 1
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_bundler_failure_exits_1_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "esbuild"
    broken.write_text("#!/bin/sh\necho 'boom: cannot bundle' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ESBUILD_BINARY_PATH", str(broken))
    out = tmp_path / "out"
    assert main(["build", "--config", str(CONFIGS / "minimal.toml"), "--out", str(out)]) == 1
    assert not out.exists()
    assert "esbuild failed (exit 3):\nboom: cannot bundle" in capsys.readouterr().err


def test_forced_fallback_warns_that_the_output_is_not_minified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["build", "--config", str(CONFIGS / "minimal.toml"), "--out", str(out), "--bundler", "esbuild-py"]) == 0
    assert "warning: bundled with the esbuild-py fallback" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["esbuild_version"].startswith("esbuild-py")


def test_check_validates_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(CONFIGS / "eu-cname.toml")]) == 0
    printed = capsys.readouterr().out
    assert "ok (agent https://pendo-static.example.com/agent/static/" in printed
    assert printed.splitlines()[1:] == [
        "  [on ] subscriptions[0] 'Send Track Event': track when type = \"track\"",
        "  [on ] subscriptions[1] 'Send Identify Event': identify when type = \"identify\"",
        "  [on ] subscriptions[2] 'Send Group Event': group when type = \"group\"",
    ]
    assert main(["check", "--config", str(write_config(tmp_path, "[pendo]\n"))]) == 1
    assert "pendo.api_key: is required but missing" in capsys.readouterr().err
    assert {path.name for path in tmp_path.iterdir()} == {"pendo.toml"}


def test_check_shows_the_webhook_and_warns_of_double_tracking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '[pendo]\napi_key = "k-1"\nregion = "eu"\n[webhook]\ncovers_web_source = true\n')
    assert main(["check", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert (
        "  [webhook] 'Send track events to Pendo': POST https://app.eu.pendo.io/data/track when type = \"track\""
        in captured.out.splitlines()
    )
    assert "warning: track events are sent both by the browser script and by the [webhook]" in captured.err
    assert {path.name for path in tmp_path.iterdir()} == {"pendo.toml"}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["build"],
        ["build", "--config", "x.toml"],
        ["check"],
        ["frobnicate"],
        ["build", "--out", "x", "--nope"],
        ["relay", "--config", "x.toml", "--concurrency", "0"],
        ["relay", "--config", "x.toml", "--port", "70000"],
        ["serve", "--config", "x.toml", "--port", "eighty"],
        ["bench", "--runs", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2


@pytest.mark.parametrize("argv", [["--help"], ["build", "--help"], ["check", "--help"], ["--version"]])
def test_help_on_every_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out


def test_python_dash_m_generator_runs_the_cli(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "generator", "check", "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert process.returncode == 1
    assert process.stderr.endswith("file not found; check the path passed to --config\n")
    assert "Traceback" not in process.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "generator", "build", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    assert usage.stdout.startswith("usage: python -m generator build ")


def test_library_build_returns_the_manifest(tmp_path: Path) -> None:
    manifest = generator.build(CONFIGS / "eu-cname.toml", tmp_path / "lib-out")
    assert output_names(tmp_path / "lib-out") == OUTPUT_FILES
    assert set(manifest["files"]) == {path.name for path in (tmp_path / "lib-out").iterdir()} - {"manifest.json"}
    assert json.loads((tmp_path / "lib-out" / "manifest.json").read_text()) == manifest
