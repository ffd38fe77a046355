"""Every command-line mistake is one line naming the argument and the fix: exit 1 or 2, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
GOOD = '[pendo]\napi_key = "k-1"\n'
BUSY = "{busy}"

# (argv with {busy} for a port in use, exit code, text the one error line must hold)
BAD_INVOCATIONS: list[tuple[list[str], int, str]] = [
    ([], 2, "the following arguments are required: COMMAND"),
    (["biuld"], 2, "invalid choice: 'biuld' (choose from 'build', 'check', "),
    (["biuld"], 2, "did you mean 'build'?"),
    (["chek", "--config", "good.toml"], 2, "did you mean 'check'?"),
    (["build", "--conf", "good.toml", "--ou", "dist"], 2, "--conf is not an option: did you mean --config?"),
    (
        ["build", "--config", "good.toml", "--ou", "dist"],
        2,
        "required: --out; --ou is not an option: did you mean --out?",
    ),
    (["build", "--config", "good.toml", "--out", "dist", "--bundle", "esbuild"], 2, "did you mean --bundler?"),
    (["build", "--config", "good.toml", "--out", "dist", "--bundler", "esbulid"], 2, "did you mean 'esbuild'?"),
    (["build", "--config", "good.toml", "--out", "dist", "--bundler", "auto"], 2, "argument --bundler: invalid choice"),
    (["build", "--config", "", "--out", "dist"], 2, "argument --config: is empty; pass a path"),
    (["build", "--config", "good.toml", "--out"], 2, "argument --out: expected one argument"),
    (["build", "--config", "good.toml", "--out", "a-file"], 1, "--out a-file is a file, not a folder; pass a folder"),
    (["build", "--config", "good.toml", "--out", "a-file/sub"], 1, "--out a-file/sub: "),
    (["build", "--config", "good.toml", "--out", "x" * 300], 1, "cannot create the folder"),
    (["build", "--config", "missing.toml", "--out", "dist"], 1, "error: missing.toml: file not found; check the path"),
    (["build", "--config", "a-folder", "--out", "dist"], 1, "is a directory; pass the path of a .toml config file"),
    (["build", "--config", "bad.toml", "--out", "dist"], 1, "pendo.region: 'us' is not one of"),
    (["check"], 2, "the following arguments are required: --config"),
    (["check", "--config", "good.toml", "stray"], 2, "unrecognized arguments: stray"),
    (["check", "--config", "x" * 300], 1, "cannot be read: File name too long"),
    (["check", "--config", "/dev/zero"], 1, "error: /dev/zero: is over 1 MB, too big for a config"),
    (["import-segment", "settings.json", "--out", "missing/pendo.toml"], 1, "the folder missing does not exist"),
    (["import-segment", "settings.json", "--out", "a-folder"], 1, "--out a-folder is a folder; pass a file path"),
    (["import-segment", "settings.json", "--out", "a-folder", "--force"], 1, "--out a-folder is a folder"),
    (["import-segment", "settings.json", "--out", "a-file"], 1, "a-file exists; pass --force to replace it"),
    (["import-segment", "missing.json", "--out", "new.toml"], 1, "missing.json: file not found"),
    (["import-segment", "a-folder", "--out", "new.toml"], 1, "a-folder: not a readable JSON file"),
    (["import-segment", "/dev/zero", "--out", "new.toml"], 1, "/dev/zero: over 10 MB, too big"),
    (["import-segment", "deep.json", "--out", "new.toml"], 1, "deep.json: JSON nested too deeply to read"),
    (["import-segment", "deep-mapping.json", "--out", "new.toml"], 1, "JSON nested more than 64 levels deep"),
    (["check", "--config", "deep.toml"], 1, "nests arrays or tables too deeply to read"),
    (["import-segment", "--out", "new.toml"], 2, "the following arguments are required: SETTINGS.json"),
    (["webhook", "--config", "hook.toml", "--out", "missing/webhook.json"], 1, "the folder missing does not exist"),
    (["webhook", "--config", "hook.toml", "--out", "a-folder"], 1, "--out a-folder is a folder"),
    (["webhook", "--config", "good.toml", "--out", "webhook.json"], 1, "the config has no [webhook] table"),
    (["webhook", "--config", "hook.toml", "--out", "w.json", "--include-secret"], 1, "PENDO_TRACK_EVENT_SECRET is not"),
    (["verify"], 2, "the following arguments are required: URL"),
    (["verify", "ftp://shop.example/"], 2, "'ftp://shop.example/' is not an http(s) URL"),
    (["verify", "http://127.0.0.1:9/", "--wait", "-1"], 2, "'-1' must be between 0 and 120 seconds"),
    (["verify", "http://127.0.0.1:9/", "--wait", "soon"], 2, "'soon' is not a number of seconds"),
    (["verify", "http://127.0.0.1:9/", "--expect-vistor", "u"], 2, "did you mean --expect-visitor?"),
    (["verify", "http://127.0.0.1:9/", "--config", "missing.toml"], 1, "missing.toml: file not found"),
    (["serve", "--config", "good.toml", "--port", BUSY], 1, "is already in use on 127.0.0.1; stop what uses it or"),
    (["serve", "--config", "good.toml", "--port", "eighty"], 2, "argument --port: 'eighty' is not a whole number"),
    (["serve", "--config", "good.toml", "--port", "70000"], 2, "'70000' is not a port (0 to 65535)"),
    (["serve", "--config", "good.toml", "--out", "a-file"], 1, "--out a-file is a file, not a folder"),
    (["serve", "--config", "missing.toml", "--port", "0"], 1, "file not found; check the path passed to --config"),
    (["relay", "--config", "good.toml", "--db", "missing/relay.sqlite3"], 3, "--db missing/relay.sqlite3: the folder"),
    (["relay", "--config", "good.toml", "--db", "a-folder"], 3, "--db a-folder is a folder; pass a file path"),
    (["relay", "--config", "good.toml", "--db", "a-file/relay.sqlite3"], 3, "a-file is a file, not a folder"),
    (["relay", "--config", "good.toml", "--port", BUSY, "--db", "r.sqlite3"], 1, "is already in use on 127.0.0.1"),
    (["relay", "--config", "good.toml", "--concurrency", "0"], 2, "argument --concurrency: '0' must be 1 or more"),
    (["relay", "--config", "good.toml", "--max-rate", "0"], 2, "argument --max-rate: '0' must be 1 or more"),
    (["relay", "--config", "good.toml", "--max-rate", "fast"], 2, "argument --max-rate: 'fast' is not a whole"),
    (["relay", "--config", "good.toml", "--port", "-1"], 2, "'-1' is not a port"),
    (["relay", "--config", "good.toml", "--pendo-url", "ftp://x"], 2, "'ftp://x' is not an http(s) URL"),
    (["relay", "--config", "good.toml", "--pendo-url", "http://[::1"], 2, "is not an http(s) URL"),
    (["audiences", "list", "--config", "good.toml"], 2, "the following arguments are required: --db"),
    (["audiences", "lst"], 2, "did you mean 'list'?"),
    (["audiences", "list", "--config", "good.toml", "--db", "a-file"], 1, "good.toml has no [audiences] table"),
    (["audiences", "list", "--config", "aud.toml", "--db", "missing.sqlite3"], 3, "--db missing.sqlite3: no such file"),
    (["audiences", "list", "--config", "aud.toml", "--db", "a-file"], 3, "--db a-file: not a relay outbox"),
    (["webhook", "--config", "aud.toml", "--out", "w.json"], 1, "[audiences] relay_url is not set; add the relay's"),
    (["relay", "--config", "good.toml", "--dead-letter-days", "0"], 2, "argument --dead-letter-days: '0' must be"),
    (["dead-letters"], 2, "the following arguments are required: ACTION"),
    (["dead-letters", "lsit", "--db", "r.sqlite3"], 2, "did you mean 'list'?"),
    (["dead-letters", "list"], 2, "the following arguments are required: --db"),
    (["dead-letters", "list", "--db", ""], 2, "argument --db: is empty; pass the outbox file or a postgresql:// URL"),
    (["dead-letters", "list", "--db", "missing.sqlite3"], 1, "--db missing.sqlite3: no such file; pass the outbox"),
    (["dead-letters", "list", "--db", "a-folder"], 1, "--db a-folder is a folder; pass the outbox file"),
    (["dead-letters", "list", "--db", "a-file"], 3, "error: outbox a-file: it is not a SQLite database"),
    (["dead-letters", "list", "--db", "empty.sqlite3"], 3, "it holds no relay outbox (no dead_letters table)"),
    (["dead-letters", "list", "--db", "postgresql://u@/db?bogus=1"], 3, "the URL is not usable"),
    (["dead-letters", "list", "--db", "r.sqlite3", "--limit", "0"], 2, "argument --limit: '0' must be 1 or more"),
    (["dead-letters", "list", "--db", "r.sqlite3", "--lim", "5"], 2, "--lim is not an option: did you mean --limit?"),
    (["dead-letters", "replay", "--db", "r.sqlite3"], 2, "one of the arguments --all --message-id is required"),
    (["dead-letters", "replay", "--db", "r.sqlite3", "--all", "--message-id", "m"], 2, "not allowed with argument"),
    (["dead-letters", "replay", "--db", "r.sqlite3", "--message-id"], 2, "expected at least one argument"),
    (["dead-letters", "replay", "--db", "empty.sqlite3", "--all"], 3, "it holds no relay outbox"),
    (["dead-letters", "purge", "--db", "r.sqlite3"], 2, "one of the arguments --all --before is required"),
    (["dead-letters", "purge", "--db", "r.sqlite3", "--before", "yesterday"], 2, "'yesterday' is not an ISO 8601 time"),
    (["dead-letters", "purge", "--db", "r.sqlite3", "--before", "2026-01-01T00:00:00"], 2, "has no time zone"),
    (["bench", "--runs", "0"], 2, "argument --runs: '0' must be 1 or more"),
    (["bench", "--calls", "many"], 2, "argument --calls: 'many' is not a whole number"),
    (["bench", "--json", "a-folder"], 1, "--json a-folder is a folder"),
    (["bench", "--json", "missing/bench.json"], 1, "--json missing/bench.json: the folder missing does not exist"),
    (["build", "--config", "good.toml", "--out", "dist", "--prefix", "static/sp"], 2, "'static/sp' is not a URL path"),
    (["build", "--config", "good.toml", "--out", "dist", "--prefix", "/a b/"], 2, "'/a b/' has spaces or quotes"),
    (["build", "--config", "good.toml", "--out", "dist", "--prefix", "https://"], 2, "argument --prefix: 'https://'"),
    (["build", "--config", "good.toml", "--out", "dist", "--prefix"], 2, "argument --prefix: expected one argument"),
    (["build", "--config", "good.toml", "--out", "dist", "--prefx", "/s/"], 2, "did you mean --prefix?"),
    (["build", "--config", "missing.toml", "--out", "dist", "--watch"], 1, "--config missing.toml: no such file"),
    (["build", "--config", "good.toml", "--out", "a-file", "--watch"], 1, "--out a-file is a file, not a folder"),
    (
        ["check", "--config", "json.toml"],
        1,
        'this looks like JSON; the config is TOML; its first key in TOML:\n    [pendo]\n    api_key = "k-1"',
    ),
    (["check", "--config", "broken-json.toml"], 1, "this looks like JSON; the config is TOML (tables are [name] lines"),
    (["check", "--config", "good.toml", "--verbose"], 2, "unrecognized arguments: --verbose (see `"),
    (["check", "--config", "good.toml", "--confg", "x"], 2, "--confg is not an option: did you mean --config?"),
    (["serve", "--config", "good.toml", "--prot", "1"], 2, "--prot is not an option: did you mean --port?"),
    (["schema", "--out", "a-folder"], 1, "--out a-folder is a folder; pass a file path"),
    (["schema", "--out", "missing/schema.json"], 1, "--out missing/schema.json: the folder missing does not exist"),
    (["schema", "--out"], 2, "argument --out: expected one argument"),
    (["schema", "--output", "s.json"], 2, "--output is not an option: did you mean --out?"),
    (["schema", "--out", ""], 2, "argument --out: is empty; pass a path"),
]


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def folder_state(root: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None for path in sorted(root.rglob("*"))
    }


def test_the_table_covers_every_command_with_at_least_25_mistakes() -> None:
    assert len(BAD_INVOCATIONS) >= 25
    commands = {argv[0] for argv, _, _ in BAD_INVOCATIONS if argv}
    assert commands >= {
        "build",
        "check",
        "import-segment",
        "webhook",
        "serve",
        "relay",
        "dead-letters",
        "bench",
        "schema",
    }


@pytest.mark.parametrize(("argv", "code", "message"), BAD_INVOCATIONS)
def test_a_bad_invocation_is_one_line_with_no_traceback_and_writes_nothing(
    argv: list[str], code: int, message: str, tmp_path: Path, busy_port: int
) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text('[pendo]\napi_key = "k-1"\nregion = "us"\n')
    (tmp_path / "hook.toml").write_text(GOOD + "[webhook]\n")
    (tmp_path / "aud.toml").write_text(GOOD + "[audiences]\n")
    (tmp_path / "settings.json").write_text(json.dumps({"apiKey": "k-1"}))
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "json.toml").write_text(json.dumps({"pendo": {"api_key": "k-1", "region": "eu"}}, indent=2))
    (tmp_path / "broken-json.toml").write_text('{"pendo": {"api_key": "k-1",}}')
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000)
    mapping: object = "x"
    for _ in range(900):
        mapping = {"a": mapping}
    deep_mapping = {"apiKey": "k-1", "subscriptions": [{"partnerAction": "track", "mapping": {"metadata": mapping}}]}
    (tmp_path / "deep-mapping.json").write_text(json.dumps(deep_mapping))
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    before = folder_state(tmp_path)
    env = {key: value for key, value in os.environ.items() if key != "PENDO_TRACK_EVENT_SECRET"}
    if argv[:1] == ["relay"]:
        env |= {"PENDO_TRACK_EVENT_SECRET": "s", "RELAY_SHARED_SECRET": "r"}
    process = subprocess.run(
        [sys.executable, "-m", "generator", *(word.replace(BUSY, str(busy_port)) for word in argv)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (process.returncode, process.stdout) == (code, ""), process.stderr
    assert "Traceback" not in process.stderr
    assert message in process.stderr
    lines = process.stderr.strip().splitlines()
    # One line; a config file's problems are listed one per line under a heading naming the file.
    assert len(lines) == 1 or lines[0].endswith(("1 config problem:", "config problems:")), process.stderr
    assert folder_state(tmp_path) == before


def test_output_cut_short_by_its_reader_is_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    command = f"{sys.executable} -m generator build --config good.toml --out dist | head -c 10"
    process = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.stdout == "built with"
    assert process.stderr == ""
    assert process.returncode in (0, 141)
    assert (tmp_path / "dist" / "manifest.json").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--config", "x.toml", "--verbose"],
        ["build", "--config", "x.toml", "--out", "dist", "--verbose"],
        ["serve", "--config", "x.toml", "--inline"],
        ["check", "--config", "x.toml", "--out", "dist"],
        ["bench", "--versio"],
    ],
)
def test_no_suggestion_rather_than_a_wrong_one(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A suggestion comes only from the command's own options, and only when it is a near spelling."""
    from generator.cli import main

    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "unrecognized arguments" in error
    assert "did you mean" not in error


@pytest.mark.parametrize(
    ("typed", "known", "close"),
    [
        ("--conf", "--config", True),
        ("--ou", "--out", True),
        ("--output", "--out", True),
        ("--bundle", "--bundler", True),
        ("biuld", "build", True),
        ("--prot", "--port", True),
        ("--verbose", "--version", False),
        ("--out", "--port", False),
        ("x", "--config", False),
    ],
)
def test_a_suggestion_must_be_a_near_spelling(typed: str, known: str, close: bool) -> None:
    from generator.suggest import close_spelling

    assert close_spelling(typed, known) is close
