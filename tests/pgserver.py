"""A real PostgreSQL server for the test session, started on loopback.

The server binaries come from Debian's postgresql package (.ci installs it).
As root, initdb and postgres must run as the ``postgres`` user.  Outside CI a
missing server skips the PostgreSQL tests with a loud reason; in CI
(``$CI`` set) it fails them.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _find(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = _free_port()
        self._counter = itertools.count(1)
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        initdb, pg_ctl = _find("initdb"), _find("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.pg_ctl = pg_ctl
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        result = self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "pytp", "--no-sync")
        if result.returncode:
            raise RuntimeError(f"initdb failed: {result.stderr}")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        result = self._run(
            pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start"
        )
        if result.returncode:
            log = (self.directory / "log").read_text() if (self.directory / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log}")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://pytp@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"pytp_test_{next(self._counter)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=pytp dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    directory = Path(tempfile.mkdtemp(prefix="pytp-pg-"))
    os.chmod(directory, 0o755)
    server = PostgresServer(directory)
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as err:
        message = f"PostgreSQL tests need a PostgreSQL server: {err}. Run .ci/install-deps.sh."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip("LOUD SKIP: " + message)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
