"""A real PostgreSQL server on loopback for the tests (pytest plugin).

Debian's postgresql-15 binaries (``/usr/lib/postgresql/15/bin``, or
``SYNMAG_PG_BIN``) start a throw-away cluster in a temporary directory: trust
authentication, listening on 127.0.0.1 on a free port, its Unix socket in the
same directory, durability off (fsync) because the data are disposable.
``initdb`` refuses to run as root, so under root the server runs as the
``postgres`` OS user (``runuser``). Startup takes about a second.

Fixtures
--------
postgres_server
    Session-scoped :class:`PostgresServer` (``url(dbname)``, ``create_database()``).
postgres_url
    A fresh, empty database for one test:
    ``postgresql+psycopg://postgres@127.0.0.1:PORT/synmag_t_N``; dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require

PG_BIN = Path(os.environ.get("SYNMAG_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", PG_USER, "--", *cmd]


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL cluster."""

    host: str
    port: int
    base: Path
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{PG_USER}@{self.host}:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        name = name or f"synmag_t_{next(self._counter)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster for the session; stop and delete it at the end."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    require(initdb.is_file() and pg_ctl.is_file(), f"PostgreSQL binaries not found in {PG_BIN}")
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser needed to run PostgreSQL as non-root")
    # Not under pytest's tmp dir: its root is mode 0700, which the postgres user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="synmag-pg-"))
    base.chmod(0o755)
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, PG_USER)
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run(
            _as_server_user(
                [str(initdb), "-D", str(data), "-U", PG_USER, "--auth=trust", "--no-sync",
                 "-E", "UTF8", "--locale=C"]
            ),
            **run,
        )
        port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=100"
        )
        subprocess.run(
            _as_server_user(
                [str(pg_ctl), "-D", str(data), "-o", options, "-l", str(base / "server.log"),
                 "-w", "-t", "60", "start"]
            ),
            **run,
        )
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr}\n{log}")
    server = PostgresServer("127.0.0.1", port, base)
    try:
        yield server
    finally:
        subprocess.run(
            _as_server_user([str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for one test; dropped afterwards."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])
