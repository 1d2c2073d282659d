"""Exactly one active scheduler across replicas.

With PostgreSQL, the leader holds a session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated connection kept open for the life of
the process: when the process dies, PostgreSQL drops the connection and with it
the lock, and another replica takes over on its next tick. Followers keep
serving the API and simply do not run jobs.

With SQLite (one machine, embedded), the lock is an ``fcntl`` lock on a file
beside the database: the kernel releases it when the process dies, even after
``kill -9``.

APScheduler's own shared job stores are not used for this: with several
schedulers on one store, version 3 runs a job on each of them.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

from service import observability as obs
from service.settings import Settings

log = logging.getLogger(__name__)

# Arbitrary constant naming the lock: "synmag" in ASCII, as a 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"synmag\x00\x01", "big")


class LeaderLock(Protocol):
    def acquire(self) -> bool:
        """Try to become (or check that we still are) the leader; never blocks."""

    def release(self) -> None: ...


class FileLock:
    """``fcntl`` lock on ``path``, for embedded (SQLite) deployments."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PostgresAdvisoryLock:
    """Session advisory lock on a dedicated psycopg connection."""

    def __init__(self, database_url: str, key: int = ADVISORY_LOCK_KEY) -> None:
        self.conninfo = _psycopg_conninfo(database_url)
        self.key = key
        self._conn = None  # psycopg.Connection while we hold (or try) the lock
        self._held = False

    def acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._held = False
                self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
            if self._held:
                # Re-check each tick: the connection (and so the lock) may be gone.
                self._conn.execute("SELECT 1")
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            self._held = bool(row and row[0])
            return self._held
        except psycopg.Error as exc:
            obs.database_errors_total.inc()
            log.warning("leader lock: database error, not leading this tick: %s", exc)
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is not None and not self._conn.closed and self._held:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception as exc:  # closing the connection releases it anyway
                log.debug("advisory unlock failed: %s", exc)
        self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken
                pass
        self._conn = None


def _psycopg_conninfo(database_url: str) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) -> libpq URL."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def sqlite_path(database_url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(database_url).database
    if not database or database == ":memory:":
        return Path("var/synmag.db")
    return Path(database)


def make_leader_lock(settings: Settings) -> LeaderLock:
    """The lock that fits the configured database."""
    if settings.is_postgres:
        return PostgresAdvisoryLock(settings.database_url)
    db = sqlite_path(settings.database_url).resolve()
    return FileLock(db.with_name(db.name + ".scheduler.lock"))


class Leadership:
    """Tracks whether this replica leads; logs and exports changes."""

    def __init__(self, lock: LeaderLock) -> None:
        self.lock = lock
        self.is_leader = False
        obs.leader.set(0)

    def check(self) -> bool:
        now = self.lock.acquire()
        if now != self.is_leader:
            log.info("scheduler leadership %s", "acquired" if now else "lost (following)")
        self.is_leader = now
        obs.leader.set(1 if now else 0)
        return now

    def release(self) -> None:
        self.lock.release()
        self.is_leader = False
        obs.leader.set(0)
