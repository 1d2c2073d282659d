"""Migrations and unique keys on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from service.db import (
    Base,
    InputFrame,
    ModelVersion,
    Product,
    make_engine,
    session_scope,
    utc_minute,
)
from service.db.migrate import current, upgrade

T0 = datetime(2026, 11, 21, 12, 3, 41, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/synmag.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    upgrade(db_url, engine)
    yield engine
    engine.dispose()


def _frame(name: str = "20261121120341Lh.fits.fz", t: datetime = T0) -> InputFrame:
    return InputFrame(
        source="gong", filename=name, url=f"https://gong2.nso.edu/HA/haf/202611/20261121/{name}", site="LE",
        obs_time=t, obs_minute=utc_minute(t), sha256="a" * 64,
        size_bytes=3_000_000, accepted=True, quality={"score": 0.9},
    )


def _model(version: str = "v1") -> ModelVersion:
    return ModelVersion(
        version=version, sha256=version.ljust(64, "0"), onnx_uri=f"file:///m/{version}",
        metrics={}, lineage={}, status="candidate",
    )


def _product(frame: InputFrame, version: str = "v1", minute: datetime | None = None) -> Product:
    return Product(
        source="gong", input_frame_id=frame.id, obs_time=frame.obs_time, obs_minute=minute or frame.obs_minute,
        site=frame.site, model_version=version, preprocess_version="1",
        fits_uri="file:///p.fits", fits_sha256="b" * 64,
    )


def test_upgrade_from_empty_creates_every_table(engine):
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert current(engine) == "0004"


def test_upgrade_is_idempotent(db_url, engine):
    upgrade(db_url, engine)
    upgrade(db_url)
    assert current(engine) == "0004"


def test_migrated_schema_matches_models(engine):
    # What `alembic check` does: autogenerate against the migrated database finds nothing.
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_product_unique_per_input_frame_and_model(engine):
    with session_scope(engine) as s:
        s.add(_model())
        frame = _frame()
        s.add(frame)
        s.flush()
        s.add(_product(frame))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(_product(frame, minute=frame.obs_minute + timedelta(minutes=1)))


def test_product_unique_per_minute_and_model(engine):
    with session_scope(engine) as s:
        s.add_all([_model(), _model("v2")])
        first, second = _frame(), _frame("20261121120352Bh.fits.fz", T0 + timedelta(seconds=11))
        s.add_all([first, second])
        s.flush()
        s.add(_product(first))
    with session_scope(engine) as s:  # another model may have the same minute
        s.add(_product(first, version="v2"))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(_product(second))  # same minute, same model, other site


def test_input_frame_filename_unique_per_source(engine):
    with session_scope(engine) as s:
        s.add(_frame())
    with session_scope(engine) as s:  # another network may use the same file name
        other = _frame()
        other.source = "other-network"
        s.add(other)
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(_frame())


def test_migration_0003_keeps_rows_and_names_their_source(db_url):
    engine = make_engine(db_url)
    upgrade(db_url, engine, revision="0002")
    with engine.begin() as conn:  # a row as the feed wrote it before 0003: a one-letter site column
        conn.execute(text(
            "INSERT INTO input_frames (filename, url, site, site_letter, obs_time, obs_minute, sha256,"
            " size_bytes, accepted, created_at) VALUES ('20261121120341Lh.fits.fz', 'u', 'LE', 'L',"
            " :t, :t, :sha, 1, true, :t)"), {"t": T0.replace(tzinfo=None), "sha": "a" * 64})
    upgrade(db_url, engine)
    with session_scope(engine) as s:
        frame = s.scalars(select(InputFrame)).one()
        assert (frame.source, frame.site, frame.filename) == ("gong", "LE", "20261121120341Lh.fits.fz")
        frame.site = "SITE-LONGER-2"  # no longer two letters
    engine.dispose()


def test_product_needs_a_registered_model(engine):
    with session_scope(engine) as s:
        frame = _frame()
        s.add(frame)
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(_product(frame, version="never-registered"))


def test_model_status_is_checked(engine):
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        mv = _model()
        mv.status = "live"
        s.add(mv)


def test_datetimes_come_back_aware_utc(engine):
    t = datetime(2026, 11, 21, 14, 3, 41, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as s:
        s.add(_frame(t=t))
    with session_scope(engine) as s:
        frame = s.scalars(select(InputFrame)).one()
    assert frame.obs_time == datetime(2026, 11, 21, 12, 3, 41, tzinfo=UTC)
    assert frame.obs_time.utcoffset() == timedelta(0)
    assert frame.obs_minute == datetime(2026, 11, 21, 12, 3, tzinfo=UTC)
    assert frame.quality == {"score": 0.9}


def test_naive_datetimes_are_refused(engine):
    with pytest.raises(StatementError), session_scope(engine) as s:
        frame = _frame()
        frame.obs_time = datetime(2026, 11, 21, 12, 3)  # naive: the point of the test
        s.add(frame)


def test_sqlite_engine_uses_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/sub/dir/x.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_migration_0004_keeps_models_and_products_as_halpha(db_url):
    engine = make_engine(db_url)
    upgrade(db_url, engine, revision="0003")
    with engine.begin() as conn:  # a model and a product as they were before the nowcast
        t = {"t": T0.replace(tzinfo=None)}
        conn.execute(text(
            "INSERT INTO model_versions (version, sha256, onnx_uri, metrics, lineage, status, created_at)"
            " VALUES ('v1', :sha, 'file://m', '{}', '{}', 'production', :t)"), {**t, "sha": "b" * 64})
        conn.execute(text(
            "INSERT INTO input_frames (filename, url, source, site, obs_time, obs_minute, sha256,"
            " size_bytes, accepted, created_at) VALUES ('f.fits.fz', 'u', 'gong', 'LE', :t, :t, :sha, 1, true, :t)"),
            {**t, "sha": "a" * 64})
        conn.execute(text(
            "INSERT INTO products (input_frame_id, obs_time, obs_minute, source, site, model_version,"
            " preprocess_version, fits_uri, fits_sha256, created_at) VALUES (1, :t, :t, 'gong', 'LE', 'v1', '1',"
            " 'file://p', :sha, :t)"), {**t, "sha": "c" * 64})
    upgrade(db_url, engine)
    with session_scope(engine) as s:
        assert s.scalars(select(ModelVersion)).one().kind == "halpha"
        product = s.scalars(select(Product)).one()
        assert (product.model_kind, product.prior_obs, product.prior_note) == ("halpha", None, None)
    engine.dispose()


def test_model_kind_is_checked(engine):
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        mv = _model()
        mv.kind = "crystal-ball"
        s.add(mv)
