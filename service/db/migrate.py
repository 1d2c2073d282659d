"""Apply the Alembic migrations in ``migrations/`` from the service's settings.

``upgrade(settings)`` is idempotent and safe to call from several processes at
once: on PostgreSQL it holds a transaction-level advisory lock while
migrating; on SQLite a file lock next to the database file.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from service.db.engine import make_engine

if TYPE_CHECKING:
    from service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
# pg_advisory_xact_lock key for migrations ("synmag" as hex-ish digits); any fixed int64 works.
PG_MIGRATION_LOCK = 0x5_13_4A_6D_16


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` without reading ``alembic.ini``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(settings: Settings | str, engine: Engine | None = None, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest). Idempotent.

    Parameters
    ----------
    settings : Settings or str
        Settings (``database_url`` is used) or a database URL.
    engine : Engine, optional
        An engine to reuse (tests with in-memory SQLite must pass theirs).
    revision : str
        Target revision.
    """
    url = settings if isinstance(settings, str) else settings.database_url
    own = engine is None
    engine = engine or make_engine(url)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        else:
            with _sqlite_file_lock(url), engine.connect() as conn:
                # Batch mode recreates a table to alter it; with foreign keys on, dropping a
                # table other rows refer to (model_versions, input_frames) fails. Off for the
                # migration (outside its transaction, where SQLite honours the pragma), and
                # the references checked before it commits.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
                try:
                    with conn.begin():
                        cfg.attributes["connection"] = conn
                        command.upgrade(cfg, revision)
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"migration to {revision} broke foreign keys: {broken[:5]}")
                finally:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
    finally:
        if own:
            engine.dispose()


def current(engine: Engine) -> str | None:
    """The revision the database is at (``None`` when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
