"""`segment-pendo dead-letters list | replay | purge`: the events Pendo refused for good, looked at and acted on.

Safe while relays run on the same outbox (SQLite or PostgreSQL). A mistake in the command is one line and exit 1
or 2; an outbox that cannot be used is exit 3, as for the relay.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 1
DEFAULT_LIMIT = 100
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def add_dead_letter_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register `dead-letters` and its three subcommands."""
    dead_letters = commands.add_parser(
        "dead-letters",
        help="list, replay or purge the relay's dead letters",
        description=(
            "The events Pendo refused for good (or the relay gave up on), in the outbox --db names: a SQLite file "
            "or a postgresql:// URL. Safe while relays run on it; a replayed event keeps its messageId."
        ),
    )
    actions = dead_letters.add_subparsers(title="actions", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the most recent dead letters, newest first")
    _add_db_argument(listing)
    listing.add_argument(
        "--limit", type=_positive, default=DEFAULT_LIMIT, help=f"how many at most (default {DEFAULT_LIMIT})"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(run=_run_list)

    replay = actions.add_parser(
        "replay", help="put dead letters back in the outbox; a running relay delivers them again"
    )
    _add_db_argument(replay)
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--all", action="store_true", help="every dead letter")
    chosen.add_argument(
        "--message-id", type=_message_id, nargs="+", metavar="ID", help="these messageIds (as `list` shows them)"
    )
    replay.set_defaults(run=_run_replay)

    purge = actions.add_parser("purge", help="forget dead letters (their messageIds stay known, for deduplication)")
    _add_db_argument(purge)
    when = purge.add_mutually_exclusive_group(required=True)
    when.add_argument("--all", action="store_true", help="every dead letter")
    when.add_argument("--before", type=_iso_time, metavar="ISO-TIME", help="those that failed before this time")
    purge.set_defaults(run=_run_purge)


def _add_db_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--db", required=True, type=_outbox, help="the relay's outbox: a SQLite file or a postgresql:// URL"
    )


def _outbox(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; pass the outbox file or a postgresql:// URL")
    if "\0" in text:
        raise argparse.ArgumentTypeError("holds a NUL character; pass the outbox file or a postgresql:// URL")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _message_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; pass a messageId as `dead-letters list` shows it")
    return text


def _iso_time(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time with a zone (or a date: midnight UTC)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not an ISO 8601 time, e.g. 2026-12-01T00:00:00Z") from None
    if when.tzinfo is None:
        if len(text.strip()) > len("2026-12-01"):
            raise argparse.ArgumentTypeError(f"{text[:60]!r} has no time zone; add one, e.g. Z for UTC")
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _run_list(arguments: argparse.Namespace) -> int:
    from generator.relay.dead_letter_store import open_store  # noqa: PLC0415  (only this command needs it)

    store = open_store(arguments.db)
    try:
        entries = store.entries(arguments.limit)
    finally:
        store.close()
    if arguments.json:
        print(json.dumps([entry.as_json() for entry in entries], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not entries:
        print(f"no dead letters in {store.where}")
        return EXIT_OK
    print(f"{'when':<20}  {'kind':<24}  {'status':>6}  {'messageId':<36}  reason")
    for entry in entries:
        status = "-" if entry.status is None else str(entry.status)
        print(f"{entry.as_json()['when']:<20}  {entry.kind:<24}  {status:>6}  {entry.message_id:<36}  {entry.reason}")
    return EXIT_OK


def _run_replay(arguments: argparse.Namespace) -> int:
    from generator.errors import GeneratorError  # noqa: PLC0415
    from generator.relay.dead_letter_store import open_store  # noqa: PLC0415

    store = open_store(arguments.db)
    try:
        replayed, unknown = store.replay(None if arguments.all else arguments.message_id)
    finally:
        store.close()
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise GeneratorError(f"no dead letter with messageId {shown}; none replayed (see `dead-letters list`)")
    print(f"replayed {replayed} dead letter{'s' if replayed != 1 else ''} into {store.where}; relays deliver them")
    return EXIT_OK


def _run_purge(arguments: argparse.Namespace) -> int:
    from generator.relay.dead_letter_store import iso_time, open_store  # noqa: PLC0415

    store = open_store(arguments.db)
    try:
        removed = store.purge(None if arguments.all else arguments.before)
    finally:
        store.close()
    since = "" if arguments.all else f" from before {iso_time(arguments.before)}"
    print(f"purged {removed} dead letter{'s' if removed != 1 else ''}{since} from {store.where}")
    return EXIT_OK
