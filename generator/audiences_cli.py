"""`segment-pendo audiences list`: each Engage audience the relay keeps, its Pendo segment, counts and last error."""

from __future__ import annotations

import argparse
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError, StorageError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
COLUMNS = ("audience", "pendo segment", "added", "removed", "pending", "failed", "last error")


def add_audiences_commands(commands: argparse._SubParsersAction[Any], config_type: Any, db_type: Any) -> None:
    """Register `audiences list` (config_type and db_type parse --config and --db as the other commands do)."""
    audiences = commands.add_parser(
        "audiences",
        help="show the Engage audiences the relay keeps in Pendo Segments",
        description="Commands about [audiences]: Engage audience membership sent by the relay to Pendo Segments.",
    )
    verbs = audiences.add_subparsers(title="commands", required=True, metavar="COMMAND")
    listing = verbs.add_parser(
        "list",
        help="each audience, its Pendo segment id, members added and removed, pending, and the last error",
        description=(
            "Read the relay's outbox (a running relay may be using it) and print, for each audience in the config "
            "or seen by the relay: its Pendo segment id, memberships added and removed, pending and failed, and "
            "the last error."
        ),
    )
    listing.add_argument("--config", required=True, type=config_type, metavar="PATH", help="the TOML config file")
    listing.add_argument(
        "--db", required=True, type=db_type, help="the relay's outbox: its SQLite file, or its postgresql:// URL"
    )
    listing.set_defaults(run=run_audiences_list)


def run_audiences_list(arguments: argparse.Namespace) -> int:
    """Print the table; GeneratorError (StorageError for the outbox) when it cannot."""
    from generator.config_loader import load_config  # noqa: PLC0415  (keeps `--help` fast)

    config = load_config(arguments.config)
    if config.audiences is None:
        raise GeneratorError(f"{arguments.config} has no [audiences] table; the relay sends no audiences for it")
    rows = {row[0]: row for row in _read_rows(arguments.db)}
    table: list[tuple[str, ...]] = []
    for audience in sorted({*rows, *config.audiences.segments}):
        found = rows.get(audience)
        named = config.audiences.segments.get(audience)
        segment = named or (found[1] if found and found[1] else "(none yet)")
        counts = (found[2], found[3], found[5], found[4]) if found else (0, 0, 0, 0)
        error = str(found[6]) if found and found[6] else ""
        state = "" if config.audiences.sends(audience) else " (not sent now)"
        table.append((audience + state, str(segment), *(str(value) for value in counts), " ".join(error.split())[:160]))
    if not table:
        print("no audience yet: the relay has not received an Engage audience call, and [audiences.segments] is empty")
        return 0
    widths = [max(len(line[index]) for line in [COLUMNS, *table]) for index in range(len(COLUMNS) - 1)]
    for line in [COLUMNS, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    return 0


def _read_rows(db: str) -> list[tuple[Any, ...]]:
    from generator.relay.audience_store import AUDIENCE_ROWS  # noqa: PLC0415

    if db.startswith(POSTGRES_SCHEMES):
        try:
            from generator.relay.pg_outbox import PostgresOutbox  # noqa: PLC0415  (psycopg is optional)
        except ImportError:
            raise GeneratorError(
                "--db is a PostgreSQL URL but psycopg is not installed; pip install 'segment-pendo[postgres]'"
            ) from None
        outbox = PostgresOutbox(db)
        try:
            return [
                (row.audience, row.segment_id, row.added, row.removed, row.failed, row.pending, row.last_error)
                for row in outbox.audience_rows()
            ]
        finally:
            outbox.close()
    path = Path(db)
    if not path.is_file():
        raise StorageError(f"--db {db}: no such file; pass the --db the relay runs with")
    try:
        # Read-only, without taking the relay's ownership of the file: a running relay keeps it.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'audience_segments'").fetchone():
                return []
            return [tuple(row) for row in connection.execute(AUDIENCE_ROWS)]
    except sqlite3.DatabaseError as error:
        raise StorageError(f"--db {db}: not a relay outbox ({' '.join(str(error).split())})") from None
