"""`build --prefix` prints the tag to paste and where to serve the files; `build --watch` keeps building until Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator import script_tag
from generator.cli import main

CHECKOUT = Path(__file__).resolve().parent.parent
GOOD = '[pendo]\napi_key = "k-1"\n'
OTHER = '[pendo]\napi_key = "k-2"\n'
BAD = '[pendo]\napi_key = "k-1"\nregion = "us"\n'


@pytest.mark.parametrize(
    ("prefix", "base"),
    [
        ("/static/segment-pendo/", "/static/segment-pendo/"),
        ("/static/segment-pendo", "/static/segment-pendo/"),
        ("https://cdn.example.com/sp", "https://cdn.example.com/sp/"),
    ],
)
def test_the_printed_tag_is_the_one_script_tag_gives_for_the_same_prefix(
    prefix: str, base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pendo.toml").write_text(GOOD)
    out = tmp_path / "out"
    assert main(["build", "--config", str(tmp_path / "pendo.toml"), "--out", str(out), "--prefix", prefix]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    tag = script_tag(out, prefix=base)
    assert f'src="{base}{manifest["entry"]}"' in tag
    assert f"paste right after the Segment snippet:\n  {tag}\n" in printed
    assert f"serve the files in {out}/ at {base} (the script is {base}{manifest['entry']})" in printed


def test_without_a_prefix_the_folder_is_served_at_the_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pendo.toml").write_text(GOOD)
    out = tmp_path / "out"
    assert main(["build", "--config", str(tmp_path / "pendo.toml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"serve the files in {out}/ at / " in printed
    assert script_tag(out) in printed


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _wait_for(lines: queue.Queue[str], text: str, seen: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"{text!r} never printed; got:\n{''.join(seen)}")


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], Path]]:
    config = tmp_path / "pendo.toml"
    config.write_text(GOOD)
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "generator", "build", "--config", "pendo.toml", "--out", "out", "--watch"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    try:
        yield process, lines, config
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _edit(config: Path, text: str) -> None:
    # A new size and a later timestamp, however coarse the file system's clock.
    config.write_text(text)
    later = time.time() + 2
    os.utime(config, (later, later))


def test_watch_rebuilds_on_each_edit_keeps_the_last_good_build_and_stops_cleanly_on_ctrl_c(
    watching: tuple[subprocess.Popen[str], queue.Queue[str], Path],
) -> None:
    process, lines, config = watching
    out = config.parent / "out"
    seen: list[str] = []
    _wait_for(lines, "watching pendo.toml", seen)
    first = json.loads((out / "manifest.json").read_text())

    _edit(config, OTHER)
    rebuilt = _wait_for(lines, "rebuilt segment-pendo.", seen)
    second = json.loads((out / "manifest.json").read_text())
    assert second["entry"] != first["entry"]
    entry = second["files"][second["entry"]]
    assert f"rebuilt {second['entry']}: {entry['bytes']} B, {entry['gzip_bytes']} B gzip" in rebuilt
    assert _wait_for(lines, "<script", seen).strip() == script_tag(out)

    before = {path.name: path.read_bytes() for path in out.iterdir()}
    _edit(config, BAD)
    _wait_for(lines, "pendo.region: 'us' is not one of", seen)
    _wait_for(lines, "nothing written; out/ keeps the last good build", seen)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before

    _edit(config, GOOD + "\n")
    _wait_for(lines, "rebuilt segment-pendo.", seen)
    assert json.loads((out / "manifest.json").read_text())["entry"] == first["entry"]

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    _wait_for(lines, "stopped watching", seen)
    time.sleep(0.3)
    while not lines.empty():
        seen.append(lines.get())
    assert "Traceback" not in "".join(seen)


def test_watch_reports_an_unreadable_config_and_stops_on_sigterm_with_exit_0(
    watching: tuple[subprocess.Popen[str], queue.Queue[str], Path],
) -> None:
    process, lines, config = watching
    seen: list[str] = []
    _wait_for(lines, "watching pendo.toml", seen)
    _edit(config, "[pendo\n")
    _wait_for(lines, "nothing written", seen)
    process.terminate()
    assert process.wait(timeout=30) == 0
