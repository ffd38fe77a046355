"""Both outbox stores for tests of the Outbox contract: a SQLite file, and a fresh database in the throwaway
PostgreSQL cluster."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from generator.relay.outbox import Outbox, SqliteOutbox
from generator.relay.pg_outbox import PostgresOutbox
from tests.support.postgres import PORT, PostgresCluster


def fresh_database(cluster: PostgresCluster) -> str:
    """The URL of a new, empty database in cluster."""
    name = f"outbox_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"postgresql://{cluster.user}@/{name}?host={cluster.socket_dir}&port={PORT}"


@pytest.fixture(params=["sqlite", "postgresql"])
def new_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Outbox]]:
    """Opens (or reopens) one outbox of the parameter's kind."""
    opened: list[Outbox] = []
    if request.param == "sqlite":
        path = tmp_path / "outbox.sqlite3"

        def open_sqlite() -> Outbox:
            opened.append(SqliteOutbox(path))
            return opened[-1]

        yield open_sqlite
    else:
        url = fresh_database(request.getfixturevalue("postgres_cluster"))

        def open_postgres() -> Outbox:
            opened.append(PostgresOutbox(url))
            return opened[-1]

        yield open_postgres
    for outbox in opened:
        outbox.close()


def table_rows(outbox: Outbox, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query straight from the outbox's storage (messageIds as text), to check what it keeps."""
    if isinstance(outbox, SqliteOutbox):
        with sqlite3.connect(outbox.path) as db:
            return db.execute(query).fetchall()
    assert isinstance(outbox, PostgresOutbox)
    with psycopg.connect(outbox.url) as db:
        rows = db.execute(query).fetchall()
    return [
        tuple(bytes(value).decode() if isinstance(value, bytes | memoryview) else value for value in row)
        for row in rows
    ]
