"""Engines and sessions.

``make_engine(settings)`` builds an engine for ``SYNMAG_DATABASE_URL``. SQLite
gets WAL journalling, a busy timeout and foreign keys, so that the scheduler's
worker threads and the API can share one file. PostgreSQL gets pre-ping, so a
restarted server does not break a long-running service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from service.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(settings_or_url: Settings | str, **kwargs: Any) -> Engine:
    """An engine for ``settings.database_url`` (or a URL string).

    The parent directory of a SQLite file is created. ``sqlite://`` (in memory)
    uses one shared connection so every session sees the same database.
    """
    url_str = settings_or_url if isinstance(settings_or_url, str) else settings_or_url.database_url
    url = make_url(url_str)
    if url.get_backend_name() == "sqlite":
        database = url.database
        in_memory = not database or database == ":memory:"
        if not in_memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        if in_memory:
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory; objects stay readable after commit (``expire_on_commit=False``)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(bind: Engine | sessionmaker[Session]) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any exception.

    Parameters
    ----------
    bind : Engine or sessionmaker
        Where the session comes from.
    """
    factory = bind if isinstance(bind, sessionmaker) else session_factory(bind)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
