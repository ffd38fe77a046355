"""The PostgreSQL test set-up: a throwaway cluster from Debian's packages that tests (and a shared outbox) can use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import PostgresCluster, server_bin_dir, throwaway_cluster


def test_the_session_cluster_takes_connections(postgres_cluster: PostgresCluster) -> None:
    with psycopg.connect(postgres_cluster.dsn) as connection:
        version = connection.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 130000
        assert connection.execute("SHOW listen_addresses").fetchone() == ("",)
    with psycopg.connect(postgres_cluster.url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_claims_skip_rows_another_session_holds(postgres_cluster: PostgresCluster) -> None:
    # The primitive a shared outbox claims work with: two relays never get the same row.
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS claim_smoke")
        setup.execute("CREATE TABLE claim_smoke (id int PRIMARY KEY)")
        setup.execute("INSERT INTO claim_smoke SELECT generate_series(1, 4)")
    claim = "SELECT id FROM claim_smoke ORDER BY id LIMIT 2 FOR UPDATE SKIP LOCKED"
    with psycopg.connect(postgres_cluster.dsn) as first, psycopg.connect(postgres_cluster.dsn) as second:
        assert [row[0] for row in first.execute(claim).fetchall()] == [1, 2]
        assert [row[0] for row in second.execute(claim).fetchall()] == [3, 4]
        first.rollback()
        assert [row[0] for row in first.execute(claim).fetchall()] == [1, 2]


def test_a_cluster_is_stopped_and_removed_afterwards() -> None:
    with throwaway_cluster() as cluster:
        root = cluster.data_dir.parent
        assert (cluster.data_dir / "postmaster.pid").exists()
        with psycopg.connect(cluster.dsn) as connection:
            assert connection.execute("SELECT current_user").fetchone() == (cluster.user,)
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.dsn, connect_timeout=2)


def test_the_server_comes_from_debians_packages() -> None:
    bin_dir = server_bin_dir()
    assert bin_dir.parts[:4] == ("/", "usr", "lib", "postgresql")
    output = subprocess.run([str(Path(bin_dir) / "postgres"), "--version"], capture_output=True, text=True, check=True)
    assert output.stdout.startswith("postgres (PostgreSQL)")
