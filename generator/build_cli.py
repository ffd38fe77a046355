"""`segment-pendo build`: write the script, print the tag to paste and where to serve it; `--watch` keeps building.

With `--prefix URL` the printed tag names the URL the build folder is served under (the same meaning as
`script_tag(prefix=)`), so it can be pasted as it is. `--watch` builds again whenever the config (or a template)
changes; a bad edit prints its error and writes nothing, so the last good build keeps being served.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from generator.arguments import ArgumentProblem, output_folder
from generator.errors import GeneratorError
from generator.watch import POLL_SECONDS, source_fingerprint

EXIT_OK = 0
URL_SCHEMES = ("http://", "https://")


def add_build_options(build: argparse.ArgumentParser) -> None:
    """Add --prefix and --watch to the build command and make it run here."""
    build.add_argument(
        "--prefix",
        type=url_prefix,
        default="/",
        metavar="URL",
        help="the URL --out is served under, for the printed tag: /static/segment-pendo/ or "
        "https://cdn.example.com/sp/ (default /)",
    )
    build.add_argument(
        "--watch",
        action="store_true",
        help="build again whenever the config changes, until Ctrl-C; a bad edit keeps the last good build",
    )
    build.set_defaults(run=run_build)


def url_prefix(text: str) -> str:
    """A URL path from the site's root or an absolute http(s) URL, ending in / (added when missing)."""
    if not text.startswith(("/", *URL_SCHEMES)) or text in URL_SCHEMES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a URL path from the site's root or an http(s) URL; "
            "e.g. /static/segment-pendo/ or https://cdn.example.com/segment-pendo/"
        )
    if any(character.isspace() or character in "\"'<>" for character in text):
        raise argparse.ArgumentTypeError(f"{text!r} has spaces or quotes; pass the URL as the page would use it")
    return text if text.endswith("/") else text + "/"


def run_build(arguments: argparse.Namespace) -> int:
    """Build once (or keep building with --watch) and print the tag to paste."""
    output_folder("--out", arguments.out)
    if arguments.watch:
        return _watch(arguments)
    manifest = _build(arguments)
    for warning in manifest["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print_summary(manifest, arguments.out, arguments.prefix)
    return EXIT_OK


def print_summary(manifest: dict[str, Any], out_dir: Path, prefix: str = "/") -> None:
    """The files written, their sizes, the tag to paste and where the folder must be served from."""
    from generator.tag import script_tag  # noqa: PLC0415

    print(f"built with {manifest['esbuild_version']} into {out_dir}/")
    for name, facts in manifest["files"].items():
        print(f"  {name:<40} {facts['bytes']:>7} B  {facts['gzip_bytes']:>6} B gzip")
    if "entry" in manifest:
        print(
            f"serve the files in {out_dir}/ at {prefix} (the script is {prefix}{manifest['entry']});\n"
            f"paste right after the Segment snippet:\n  {script_tag(manifest, prefix=prefix)}"
        )
    if "module" in manifest:
        print(
            f"with analytics.js from npm, keep {out_dir}/ in the app's source tree and import the plugin where the "
            f"app loads analytics.js:\n  import {{ pendoPlugin }} from './{out_dir.name}/{manifest['module']['file']}';"
            "\n  AnalyticsBrowser.load({ writeKey, plugins: [pendoPlugin] });  // or analytics.register(pendoPlugin)"
        )
    if "inline" in manifest:
        print(
            f"or paste {manifest['inline']['file']} into the page and allow it in your Content-Security-Policy:\n"
            f"  script-src {manifest['inline']['csp_hash']}"
        )


def _build(arguments: argparse.Namespace) -> dict[str, Any]:
    from generator.pipeline import build  # noqa: PLC0415  (keeps `--help` fast)

    return build(
        arguments.config,
        arguments.out,
        bundler=arguments.bundler,
        inline=arguments.inline,
        link_map=arguments.link_map,
        output_format=arguments.format,
    )


def _watch(arguments: argparse.Namespace) -> int:
    """Build on every change of the config until Ctrl-C (or SIGTERM), which ends it with exit 0."""
    from generator.tag import script_tag  # noqa: PLC0415

    if not arguments.config.is_file():
        raise ArgumentProblem(f"--config {arguments.config}: no such file; pass the TOML config to watch")
    signal.signal(signal.SIGTERM, _stop)
    fingerprint: tuple[int, ...] = ()
    first = True
    try:
        while True:
            current = source_fingerprint(arguments.config)
            if current != fingerprint:
                fingerprint = current
                try:
                    manifest = _build(arguments)
                except GeneratorError as error:
                    print(f"{_now()} error: {error}", file=sys.stderr)
                    print(f"{_now()} nothing written; {arguments.out}/ keeps the last good build", file=sys.stderr)
                else:
                    for warning in manifest["warnings"]:
                        print(f"warning: {warning}", file=sys.stderr)
                    if first:
                        print_summary(manifest, arguments.out, arguments.prefix)
                        print(f"watching {arguments.config} (Ctrl-C stops)")
                    else:
                        name = manifest.get("entry") or manifest["module"]["file"]
                        facts = manifest["files"][name]
                        print(f"{_now()} rebuilt {name}: {facts['bytes']} B, {facts['gzip_bytes']} B gzip")
                        if "entry" in manifest:
                            print(f"  {script_tag(manifest, prefix=arguments.prefix)}")
                    first = False
                sys.stdout.flush()
                sys.stderr.flush()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print("stopped watching")
    return EXIT_OK


def _stop(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt


def _now() -> str:
    return time.strftime("%H:%M:%S")
