"""Command line: `segment-pendo <command>` (or `python -m generator <command>`).

Commands: build, check, import-segment, bench, bench-relay, webhook, relay, dead-letters, serve, verify.

Exit 0 ok, 1 bad input, 2 usage error, 3 the relay's storage is unusable. No input gives a traceback: every
problem is one line.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from generator import __version__
from generator.arguments import free_port, output_file, output_folder
from generator.audiences_cli import add_audiences_commands
from generator.build_cli import add_build_options
from generator.dead_letters_cli import add_dead_letter_commands
from generator.errors import GeneratorError, StorageError
from generator.schema_cli import add_schema_command
from generator.suggest import close_spelling
from generator.verify_cli import add_verify_command

if TYPE_CHECKING:
    from generator.config import Config

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141
# What `segment-pendo relay` imports beyond the base install (the `relay` extra).
RELAY_MODULES = ("starlette", "uvicorn", "aiohttp", "httptools")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_BENCH_JSON = Path("bench-results/bench.json")
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


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; pass a path")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} holds a NUL character; pass a path")
    return Path(text)


def _outbox_target(text: str) -> str:
    """A postgresql:// URL as it is; anything else is the SQLite file's path."""
    if text.startswith(POSTGRES_SCHEMES):
        return text
    return str(_path(text))


def _http_url(text: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415

    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL, e.g. https://app.pendo.io/data/track")
    return text


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


class _Parser(argparse.ArgumentParser):
    """No abbreviated options; a usage error is one line, with the closest command, choice or option suggested."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._given: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Remember the words given, to suggest the option a misspelt one meant."""
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """Print one line (usage is in --help) and exit 2."""
        prog = self.prog
        command = next((word for word in self._given if word in _commands(self)), None)
        if message.startswith("unrecognized arguments: ") and command:
            prog = f"{self.prog} {command}"
        hint = _suggestion(message, self, self._given)
        self.exit(EXIT_USAGE, f"{prog}: error: {message}{hint} (see `{prog} --help`)\n")


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list them
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _suggestion(message: str, parser: argparse.ArgumentParser, given: list[str]) -> str:
    if match := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message):
        choices = re.findall(r"'([^']*)'", match.group(2))
        close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.5)
        return f"; did you mean {close[0]!r}?" if close and close_spelling(match.group(1), close[0]) else ""
    # Only the named command's own options (an option of another command, or --version, would mislead); for a
    # command with actions of its own (dead-letters list), the named action's.
    command = parser
    for word in given:
        command = _commands(command).get(word, command)
    options = _own_options(command)
    if message.startswith("unrecognized arguments: "):
        words = message.removeprefix("unrecognized arguments: ").split()
    elif message.startswith("the following arguments are required: "):
        required = message.removeprefix("the following arguments are required: ").split(", ")
        words, options = [word for word in given if word.startswith("-") and word not in options], required
    else:
        return ""
    for word in words:
        close = difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.6) if word[:1] == "-" else []
        if close and close_spelling(word.split("=")[0], close[0]):
            return f"; {word.split('=')[0]} is not an option: did you mean {close[0]}?"
    return ""


def _own_options(parser: argparse.ArgumentParser) -> list[str]:
    options: list[str] = []
    for action in parser._actions:
        options.extend(option for option in action.option_strings if option.startswith("--"))
    return sorted(set(options))


def _program_name() -> str:
    """`segment-pendo` for the console script; `python -m generator` when run that way."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name in {"__main__.py", "-c"} or name.endswith(".py"):
        return "python -m generator"
    return name.removesuffix(".exe")


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
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`… | head`): stop quietly, as a tool killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_program_name(),
        description="Build one drop-in <script> that forwards Segment analytics.js calls to Pendo.",
    )
    parser.add_argument("--version", action="version", version=f"segment-pendo {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="validate the config and write the script",
        description=(
            "Write segment-pendo.min.js, its content-hashed copy segment-pendo.<hash>.min.js (the manifest's "
            '"entry"), their source maps, segment-pendo.js and manifest.json into --out. Nothing is written '
            "unless the whole build succeeds."
        ),
    )
    _add_config_argument(build)
    build.add_argument("--out", required=True, type=_path, metavar="DIR", help="directory to write the script into")
    build.add_argument(
        "--bundler",
        choices=["esbuild", "esbuild-py"],
        default="esbuild",
        help="esbuild (default): the official binary (packaged, ESBUILD_BINARY_PATH, node_modules/.bin or PATH); "
        "esbuild-py: the in-process fallback, not minified",
    )
    build.add_argument(
        "--inline",
        action="store_true",
        help="also write segment-pendo.inline.html, an inline <script>, and print its CSP hash",
    )
    build.add_argument(
        "--link-map",
        action="store_true",
        help="end segment-pendo.min.js with a sourceMappingURL line (the map itself is always written)",
    )
    build.add_argument(
        "--format",
        choices=["script", "esm", "both"],
        default="script",
        help="script (default): the drop-in <script>; esm: segment-pendo.mjs, exporting pendoPlugin for analytics.js "
        "from npm, and its types segment-pendo.d.mts; both",
    )
    add_build_options(build)

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
    importer.add_argument("settings", type=_path, metavar="SETTINGS.json", help="the destination's settings")
    importer.add_argument("--out", required=True, type=_path, metavar="PATH", help="the TOML config to write")
    importer.add_argument("--force", action="store_true", help="replace --out if it exists")
    importer.set_defaults(run=_run_import)

    _add_bench_commands(commands)
    add_schema_command(commands, _path)
    add_verify_command(commands)
    add_audiences_commands(commands, _path, _outbox_target)

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
    webhook.add_argument("--out", required=True, type=_path, metavar="PATH", help="the JSON file to write")
    webhook.add_argument(
        "--include-secret", action="store_true", help="write the secret into the header (the file gets mode 0600)"
    )
    webhook.set_defaults(run=_run_webhook)

    relay = commands.add_parser(
        "relay",
        help="run the HTTP relay that delivers server-side track events to Pendo",
        description=(
            "Accept Segment-spec track events (single or batch) and deliver them to Pendo's Track Events API "
            "from a durable outbox (a SQLite file, or a PostgreSQL database several relays share). Secrets come "
            "from the environment: PENDO_TRACK_EVENT_SECRET (Pendo's Track Event Shared Secret) and "
            "RELAY_SHARED_SECRET (what senders sign or authenticate with). With [metadata] in the config, identify "
            "and group calls go to Pendo's metadata API too, with the Integration Key from the variable "
            "[metadata] secret_env names."
        ),
    )
    _add_config_argument(relay)
    relay.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    relay.add_argument("--port", type=_port, default=8787, help="port to listen on (default 8787)")
    relay.add_argument(
        "--db",
        type=_outbox_target,
        default="relay.sqlite3",
        help="the outbox: a SQLite file (default relay.sqlite3), or a postgresql:// URL that several relays share",
    )
    relay.add_argument(
        "--pendo-url", type=_http_url, help="override the Track Events API URL (default: the config's region)"
    )
    relay.add_argument(
        "--pendo-metadata-url",
        type=_http_url,
        help="override the metadata API's base URL for [metadata] (default: the config's region's app host)",
    )
    relay.add_argument("--concurrency", type=_positive, default=4, help="requests to Pendo at once (default 4)")
    relay.add_argument(
        "--max-rate",
        type=_positive,
        default=50,
        help="requests per second to each Pendo endpoint from this relay at most (default 50; Pendo allows about 100)",
    )
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
    relay.add_argument("--dead-letter-days", type=_positive, default=14, help="days dead letters are kept (default 14)")
    relay.set_defaults(run=_run_relay)
    add_dead_letter_commands(commands)

    serve = commands.add_parser(
        "serve",
        help="build and serve the demo page on localhost",
        description=(
            "Build the script for --config (default: the bundled example config) and serve the demo page with "
            "local copies of analytics.js and the Pendo agent (npm's @pendo/agent where serve runs, else the test "
            "kit's recording stand-in); rebuilds when the config or a template changes. Nothing is fetched from "
            "the internet."
        ),
    )
    serve.add_argument(
        "--config", type=_path, metavar="PATH", help="the TOML config file (default: the bundled example config)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000; 0 picks one)")
    serve.add_argument("--open", action="store_true", help="open the page in the default browser")
    serve.add_argument(
        "--out", type=_path, metavar="DIR", help="folder for the demo's builds (default: a temporary one, then removed)"
    )
    serve.set_defaults(run=_run_serve)
    return parser


def _add_bench_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    """`bench` (the script's sizes and speed) and `bench-relay` (the relay's throughput)."""
    bench = commands.add_parser(
        "bench",
        help="measure bundle sizes, per-call overhead in Chromium and build time",
        description=(
            "Print a table and write JSON: sizes of every example config's script (failing when the default "
            "script is over 2,000 B gzip or the every-feature one over 2,500 B), per-call cost in Chromium with and "
            "without the script, its own work per event, time to the first Pendo call, and build time."
        ),
    )
    bench.add_argument(
        "--json", type=_path, default=DEFAULT_BENCH_JSON, help=f"where to write JSON (default {DEFAULT_BENCH_JSON})"
    )
    bench.add_argument("--calls", type=_positive, default=2_000, help="calls per method (default 2,000)")
    bench.add_argument("--runs", type=_positive, default=5, help="builds to take the median of (default 5)")
    bench.add_argument("--quick", action="store_true", help="sizes and budgets only (seconds, no browser)")
    bench.set_defaults(run=_run_bench)

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


def _add_config_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", required=True, type=_path, metavar="PATH", help="the TOML config file")


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
    for rule in config.audiences.rules() if config.audiences is not None else []:
        print(f"  [audiences] {rule}")
    warning = double_tracking_warning(config)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    _print_guide_events(config)
    return EXIT_OK


def _print_guide_events(config: Config) -> None:
    """The lines `check` prints for [guide_events]: the track events it sends, its webhook warning."""
    from generator.guide_events import webhook_loop_warning  # noqa: PLC0415

    if config.guide_events.enabled:
        for pendo_type, name in config.guide_events.track.forwarded().items():
            print(f"  [guide_events] Pendo {pendo_type}: analytics.track({name!r})")
    warning = webhook_loop_warning(config)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _run_import(arguments: argparse.Namespace) -> int:
    from generator.segment_import import behaviour_notes, import_segment_settings  # noqa: PLC0415

    output_file("--out", arguments.out)
    text = import_segment_settings(arguments.settings, arguments.out, force=arguments.force)
    print(f"wrote {arguments.out}; build it with: {_program_name()} build --config {arguments.out} --out DIR")
    for note in behaviour_notes(text):
        print(f"note: {note}; it will match different events than it did in Segment", file=sys.stderr)
    return EXIT_OK


def _run_bench(arguments: argparse.Namespace) -> int:
    missing = [name for name in ("brotli", "playwright") if importlib.util.find_spec(name) is None]
    if missing:
        raise GeneratorError(
            f"bench needs {' and '.join(missing)}: pip install 'segment-pendo[bench]' (and Chromium: Debian's chromium)"
        )
    from generator.bench import run  # noqa: PLC0415
    from generator.chromium import chromium_executable  # noqa: PLC0415

    if not arguments.quick and not Path(chromium_executable()).is_file():
        raise GeneratorError("bench needs Chromium: install Debian's chromium (apt-get install chromium)")
    if arguments.json == DEFAULT_BENCH_JSON:
        # The default folder is the bench's own; a folder the user names must exist.
        DEFAULT_BENCH_JSON.parent.mkdir(exist_ok=True)
    output_file("--json", arguments.json)
    return run(arguments.json, calls=arguments.calls, runs=arguments.runs, quick=arguments.quick)


def _run_webhook(arguments: argparse.Namespace) -> int:
    from generator.config_loader import load_config  # noqa: PLC0415
    from generator.webhook import checklist, write_webhook  # noqa: PLC0415

    config = load_config(arguments.config)
    output_file("--out", arguments.out)
    write_webhook(config, arguments.out, include_secret=arguments.include_secret)
    print(f"wrote {arguments.out}; then:")
    for number, step in enumerate(checklist(config), start=1):
        print(f"  {number}. {step}")
    return EXIT_OK


def _run_relay(arguments: argparse.Namespace) -> int:
    missing = [name for name in RELAY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise GeneratorError(f"the relay needs {', '.join(missing)}: pip install 'segment-pendo[relay]'")
    if not arguments.db.startswith(POSTGRES_SCHEMES):
        _check_database("--db", Path(arguments.db))
    free_port(arguments.host, arguments.port)
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
        metadata_url=arguments.pendo_metadata_url,
        max_rate=arguments.max_rate,
        dead_letter_days=arguments.dead_letter_days,
    )


def _run_bench_relay(arguments: argparse.Namespace) -> int:
    from generator.bench_relay import run  # noqa: PLC0415

    return run(arguments.json, backlog=arguments.backlog, postgres=arguments.postgres)


def _run_serve(arguments: argparse.Namespace) -> int:
    import signal  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    import webbrowser  # noqa: PLC0415

    from generator.demo.server import make_server  # noqa: PLC0415
    from generator.paths import DEMO_CONFIG  # noqa: PLC0415

    if arguments.out is not None:
        output_folder("--out", arguments.out)
    free_port(arguments.host, arguments.port)
    config = arguments.config or DEMO_CONFIG
    shown = arguments.config or "the bundled example config"
    with tempfile.TemporaryDirectory(prefix="segment-pendo-demo-") as temporary:
        build_dir = arguments.out or Path(temporary)
        try:
            server = make_server(config, host=arguments.host, port=arguments.port, build_dir=build_dir)
        except OSError as error:  # taken between the check and the bind
            raise GeneratorError(f"--port {arguments.port}: cannot listen ({error.strerror}); pass another") from None
        url = f"http://{arguments.host}:{server.server_address[1]}/"
        print(f"serving the demo for {shown} at {url} (builds in {build_dir}; Ctrl-C to stop)", flush=True)
        if arguments.open:
            webbrowser.open(url)
        # A service manager's SIGTERM stops it as Ctrl-C does, so the temporary builds are removed.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return EXIT_OK


def _interrupt(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_database(flag: str, path: Path) -> None:
    """The outbox file: in an existing folder the relay can write to (SQLite adds its -wal and -shm files there).

    A problem here is a storage problem (exit 3), like the ones the outbox itself finds when it opens the file.
    """
    try:
        output_file(flag, path)
    except GeneratorError as error:
        raise StorageError(str(error)) from None
    if path.is_file() and not os.access(path, os.W_OK):
        raise StorageError(f"{flag} {path} is read-only; make it writable or pass another --db")
