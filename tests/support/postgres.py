"""A throwaway PostgreSQL cluster from Debian's packages, for tests: initdb into a temporary directory, serve on
a unix socket in it (no TCP port to collide with other test runs), stop and delete it afterwards.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the `postgres` user that
Debian's package creates, and its commands run through `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PORT = 5432  # only names the socket file: the cluster listens on no TCP port
START_TIMEOUT_SECONDS = 60


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed (tests/setup.sh installs Debian's postgresql)."""


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster and how to reach it."""

    data_dir: Path
    socket_dir: Path
    user: str

    @property
    def dsn(self) -> str:
        """A libpq connection string for the `postgres` database."""
        return f"host={self.socket_dir} port={PORT} user={self.user} dbname=postgres"

    @property
    def url(self) -> str:
        """The same as a postgresql:// URL (what a relay's --db would be given)."""
        return f"postgresql://{self.user}@/postgres?host={self.socket_dir}&port={PORT}"


def server_bin_dir() -> Path:
    """Where Debian puts initdb and pg_ctl (newest major version first)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[4]))
    if not found:
        raise PostgresUnavailable(
            "no /usr/lib/postgresql/*/bin/initdb; run tests/setup.sh (apt-get install postgresql)"
        )
    return Path(found[-1]).parent


def _as_owner(owner: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """Start a fresh cluster; stop it and remove every file of it on exit."""
    bin_dir = server_bin_dir()
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="segment-pendo-pg-"))
    data_dir, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    if owner:
        account = pwd.getpwnam(owner)
        for path in (root, socket_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
    user = owner or pwd.getpwuid(os.geteuid()).pw_name
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data_dir)]
    options = f"-c listen_addresses='' -k {socket_dir} -p {PORT} -c fsync=off"
    steps = [
        [str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", user, "-E", "UTF8"],
        [*pg_ctl, "-o", options, "-l", str(root / "server.log"), "-w", "-t", str(START_TIMEOUT_SECONDS), "start"],
    ]
    try:
        for step in steps:
            try:
                subprocess.run(
                    _as_owner(owner, step), check=True, capture_output=True, timeout=START_TIMEOUT_SECONDS + 10
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                log = root / "server.log"
                details = (error.stderr or b"").decode(errors="replace")[-2000:]
                if log.exists():
                    details += log.read_text(errors="replace")[-2000:]
                raise PostgresUnavailable(f"{Path(step[0]).name} failed: {error}\n{details}") from None
        yield PostgresCluster(data_dir, socket_dir, user)
    finally:
        if (data_dir / "postmaster.pid").exists():
            subprocess.run(
                _as_owner(owner, [*pg_ctl, "-m", "immediate", "-w", "stop"]),
                check=False,
                capture_output=True,
                timeout=START_TIMEOUT_SECONDS,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the test session (tests make their own databases or schemas in it)."""
    with throwaway_cluster() as cluster:
        yield cluster
