"""Command line: `python -m generator build|check|import-segment|bench|bench-relay|webhook|relay|serve`.

Exit 0 ok, 1 bad input, 2 usage error, 3 the relay's storage is unusable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generator import __version__
from generator.errors import GeneratorError

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
MAX_PORT = 65_535


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to {MAX_PORT})")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; only GeneratorError is reported as bad input."""
    parser = _make_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE
    try:
        return int(arguments.run(arguments))
    except GeneratorError as error:
        print(f"error: {error}", file=sys.stderr)
        return int(getattr(error, "exit_code", EXIT_BAD_INPUT))


def _make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="Build one drop-in <script> that forwards Segment analytics.js calls to Pendo.",
    )
    parser.add_argument("--version", action="version", version=f"segment-pendo {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="validate the config and write the script",
        description=(
            "Write segment-pendo.min.js, segment-pendo.js, segment-pendo.min.js.map and manifest.json into "
            "--out. Nothing is written unless the whole build succeeds."
        ),
    )
    _add_config_argument(build)
    build.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write the script into")
    build.add_argument(
        "--bundler",
        choices=["auto", "esbuild", "esbuild-py"],
        default="auto",
        help="auto (default): the esbuild binary, else the esbuild-py fallback",
    )
    build.set_defaults(run=_run_build)

    check = commands.add_parser(
        "check",
        help="validate the config only",
        description=("Validate the config and report every problem; writes nothing."),
    )
    _add_config_argument(check)
    check.set_defaults(run=_run_check)

    importer = commands.add_parser(
        "import-segment",
        help="turn a Pendo Web (Actions) destination's settings into a config",
        description=(
            "Read a Segment Pendo Web (Actions) destination's settings (JSON: apiKey, region, cnameContentHost, "
            "disableUserTraitsOnLoad, disableGroupIdAndTraitsOnLoad, subscriptions) and write the equivalent "
            "config. Nothing is written if any setting or subscription cannot be carried over."
        ),
    )
    importer.add_argument("settings", type=Path, metavar="SETTINGS.json", help="the destination's settings")
    importer.add_argument("--out", required=True, type=Path, metavar="PATH", help="the TOML config to write")
    importer.add_argument("--force", action="store_true", help="replace --out if it exists")
    importer.set_defaults(run=_run_import)

    bench = commands.add_parser(
        "bench",
        help="measure bundle sizes, per-call overhead in Chromium and build time",
        description=(
            "Print a table and write JSON: sizes of every example config's script (failing when the "
            "every-feature config is over 2,500 B gzip), per-call cost in Chromium with and without the script, "
            "time to the first Pendo call, and build time."
        ),
    )
    bench.add_argument("--json", type=Path, default=Path("bench-results/bench.json"), help="where to write JSON")
    bench.add_argument("--calls", type=_positive, default=10_000, help="calls per method (default 10,000)")
    bench.add_argument("--runs", type=_positive, default=5, help="builds to take the median of (default 5)")
    bench.set_defaults(run=_run_bench)

    webhook = commands.add_parser(
        "webhook",
        help="write the Segment Webhooks (Actions) mapping for server-side track events",
        description=(
            "Write the Webhooks (Actions) subscription that sends track events from mobile apps and servers to "
            "Pendo's Track Events API for this config's region, and print the setup checklist. The Track Event "
            "Shared Secret is read from the environment and written only with --include-secret."
        ),
    )
    _add_config_argument(webhook)
    webhook.add_argument("--out", required=True, type=Path, metavar="PATH", help="the JSON file to write")
    webhook.add_argument("--include-secret", action="store_true", help="write the secret into the header")
    webhook.set_defaults(run=_run_webhook)

    relay = commands.add_parser(
        "relay",
        help="run the HTTP relay that delivers server-side track events to Pendo",
        description=(
            "Accept Segment-spec track events (single or batch) and deliver them to Pendo's Track Events API "
            "from a durable outbox (a SQLite file, or a PostgreSQL database several relays share). Secrets come "
            "from the environment: PENDO_TRACK_EVENT_SECRET (Pendo's Track Event Shared Secret) and "
            "RELAY_SHARED_SECRET (what senders sign or authenticate with)."
        ),
    )
    _add_config_argument(relay)
    relay.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    relay.add_argument("--port", type=_port, default=8787, help="port to listen on (default 8787)")
    relay.add_argument(
        "--db",
        default="relay.sqlite3",
        help="the outbox: a SQLite file (default relay.sqlite3), or a postgresql:// URL that several relays share",
    )
    relay.add_argument("--pendo-url", help="override the Track Events API URL (default: the config's region)")
    relay.add_argument("--concurrency", type=_positive, default=4, help="requests to Pendo at once (default 4)")
    relay.add_argument(
        "--private-details", action="store_true", help="/metrics and /healthz details need the shared secret too"
    )
    relay.add_argument("--prune-every", type=_positive, default=600, help="seconds between prunes (default 600)")
    relay.add_argument(
        "--client-timeout",
        type=_positive,
        default=10,
        help="seconds a sender gets for its headers, twice that for its body (default 10)",
    )
    relay.set_defaults(run=_run_relay)

    bench_relay = commands.add_parser(
        "bench-relay",
        help="measure the relay's intake and delivery throughput",
        description="Run a relay against a fast local fake of Pendo and print events/s; writes JSON.",
    )
    bench_relay.add_argument(
        "--json", type=Path, default=Path("bench-results/bench-relay.json"), help="where to write JSON"
    )
    bench_relay.add_argument(
        "--backlog", type=_positive, default=1_000_000, help="largest waiting backlog to deliver (default 1,000,000)"
    )
    bench_relay.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure delivery by 1, 2 and 3 relays sharing this PostgreSQL database (its outbox is emptied)",
    )
    bench_relay.set_defaults(run=_run_bench_relay)

    serve = commands.add_parser(
        "serve",
        help="build and serve the demo page on localhost",
        description=(
            "Build the script for --config and serve site_demo/ with local copies of analytics.js and the Pendo "
            "agent; rebuilds when the config or a template changes. Nothing is fetched from the internet."
        ),
    )
    _add_config_argument(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000; 0 picks one)")
    serve.add_argument("--open", action="store_true", help="open the page in the default browser")
    serve.set_defaults(run=_run_serve)
    return parser


def _add_config_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", required=True, type=Path, metavar="PATH", help="the TOML config file")


def _run_build(arguments: argparse.Namespace) -> int:
    from generator.pipeline import build  # noqa: PLC0415  (keeps `--help` fast)

    manifest = build(arguments.config, arguments.out, bundler=arguments.bundler)
    for warning in manifest["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    _print_summary(manifest, arguments.out)
    return EXIT_OK


def _run_check(arguments: argparse.Namespace) -> int:
    from generator.config_loader import load_config  # noqa: PLC0415
    from generator.regions import track_events_url  # noqa: PLC0415
    from generator.webhook import double_tracking_warning  # noqa: PLC0415

    config = load_config(arguments.config)
    print(f"{arguments.config}: ok (agent {config.pendo.agent_url})")
    for index, subscription in enumerate(config.subscriptions):
        state = "on " if subscription.enabled else "off"
        print(
            f"  [{state}] subscriptions[{index}] {subscription.label!r}: {subscription.action} when {subscription.fql}"
        )
    if config.webhook is not None:
        url = track_events_url(config.pendo.region)
        print(f"  [webhook] {config.webhook.name!r}: POST {url} when {config.webhook.subscribe}")
    if config.metadata is not None:
        from generator.webhook_metadata import metadata_subscriptions  # noqa: PLC0415

        for write in metadata_subscriptions(config, ""):
            fields = ", ".join(write["mapping"]["data"]["values"])
            print(f"  [metadata] {write['subscribe']}: POST {write['mapping']['url']} ({fields})")
    warning = double_tracking_warning(config)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _run_import(arguments: argparse.Namespace) -> int:
    from generator.segment_import import behaviour_notes, import_segment_settings  # noqa: PLC0415

    text = import_segment_settings(arguments.settings, arguments.out, force=arguments.force)
    print(f"wrote {arguments.out}; build it with: python -m generator build --config {arguments.out} --out DIR")
    for note in behaviour_notes(text):
        print(f"note: {note}; it will match different events than it did in Segment", file=sys.stderr)
    return EXIT_OK


def _run_bench(arguments: argparse.Namespace) -> int:
    from generator.bench import run  # noqa: PLC0415

    return run(arguments.json, calls=arguments.calls, runs=arguments.runs)


def _run_webhook(arguments: argparse.Namespace) -> int:
    from generator.config_loader import load_config  # noqa: PLC0415
    from generator.webhook import checklist, write_webhook  # noqa: PLC0415

    config = load_config(arguments.config)
    write_webhook(config, arguments.out, include_secret=arguments.include_secret)
    print(f"wrote {arguments.out}; then:")
    for number, step in enumerate(checklist(config), start=1):
        print(f"  {number}. {step}")
    return EXIT_OK


def _run_relay(arguments: argparse.Namespace) -> int:
    from generator.relay.main import run_relay  # noqa: PLC0415

    return run_relay(
        arguments.config,
        arguments.host,
        arguments.port,
        arguments.db,
        arguments.pendo_url,
        arguments.concurrency,
        private_details=arguments.private_details,
        prune_every_seconds=arguments.prune_every,
        client_timeout_seconds=arguments.client_timeout,
    )


def _run_bench_relay(arguments: argparse.Namespace) -> int:
    from generator.bench_relay import run  # noqa: PLC0415

    return run(arguments.json, backlog=arguments.backlog, postgres=arguments.postgres)


def _run_serve(arguments: argparse.Namespace) -> int:
    import webbrowser  # noqa: PLC0415

    from generator.demo.server import make_server  # noqa: PLC0415

    server = make_server(arguments.config, host=arguments.host, port=arguments.port)
    url = f"http://{arguments.host}:{server.server_address[1]}/"
    print(f"serving the demo for {arguments.config} at {url} (Ctrl-C to stop)", flush=True)
    if arguments.open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def _print_summary(manifest: dict[str, Any], out_dir: Path) -> None:
    print(f"built with {manifest['esbuild_version']} into {out_dir}/")
    for name, facts in manifest["files"].items():
        print(f"  {name:<28} {facts['bytes']:>7} B  {facts['gzip_bytes']:>6} B gzip")
    script = manifest["files"]["segment-pendo.min.js"]
    print(
        "paste right after the Segment snippet:\n"
        f'  <script src="/segment-pendo.min.js" integrity="{script["sri"]}" crossorigin="anonymous"></script>'
    )
