"""`segment-pendo verify URL`: the command line of generator.verify."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EXIT_OK = 0
EXIT_FAILED = 1
MAX_WAIT_SECONDS = 120.0


def add_verify_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register `verify`."""
    verify = commands.add_parser(
        "verify",
        help="open a page in headless Chromium and say what it does with Segment and Pendo",
        description=(
            "Open URL in headless Chromium (Debian's chromium, else Playwright's) and print, a line each: "
            "analytics.js, the segment-pendo script (its SRI; with --config, whether it is that config's build), "
            "where the Pendo agent came from, the visitor and account Pendo has, console errors, CSP violations "
            "and the track events sent within --wait seconds. With --expect-visitor/--expect-account it is a "
            "check: exit 0 when all hold, 1 with a line per failure."
        ),
    )
    verify.add_argument("url", type=_page_url, metavar="URL", help="the page to open (http or https)")
    verify.add_argument(
        "--config", type=_config_path, metavar="FILE", help="the config the page's script is built from"
    )
    verify.add_argument("--expect-visitor", metavar="ID", help="fail unless Pendo's visitor is ID")
    verify.add_argument("--expect-account", metavar="ID", help="fail unless Pendo's account is ID")
    verify.add_argument(
        "--offline",
        action="store_true",
        help="answer Segment's and Pendo's hosts locally, as the test kit does (for CI against a local build)",
    )
    verify.add_argument(
        "--wait", type=_seconds, default=5.0, metavar="SECONDS", help="how long to watch after load (default 5)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=run_verify)


def run_verify(arguments: argparse.Namespace) -> int:
    """Open the page, print the report, exit 1 on a failed expectation."""
    from generator.verify import Expectations, verify  # noqa: PLC0415

    report = verify(
        arguments.url,
        wait_seconds=arguments.wait,
        offline=arguments.offline,
        config_path=arguments.config,
        expectations=Expectations(arguments.expect_visitor, arguments.expect_account),
    )
    if arguments.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
        for failure in report.failures:
            print(f"FAIL: {failure}")
    return EXIT_FAILED if report.failures else EXIT_OK


def _page_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/")
    return text


def _config_path(text: str) -> Path:
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a path")
    return Path(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and {MAX_WAIT_SECONDS:g} seconds")
    return value
