"""``synmag models``, ``synmag products`` and ``synmag migrate`` output."""

from __future__ import annotations

import argparse
import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from service.db import InputFrame, Product, make_engine, session_scope, utc_minute
from service.errors import UsageError
from service.registry import Registry
from service.settings import get_settings
from tests.test_registry import make_onnx, metrics


def run(command: str, *argv: str) -> int:
    """Run one sub-command the way ``service.cli`` does (configure, parse, main)."""
    module = importlib.import_module(f"service.commands.{command}")
    parser = argparse.ArgumentParser(prog=f"synmag {command}")
    module.configure(parser)
    return module.main(parser.parse_args(list(argv)))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNMAG_DATABASE_URL", f"sqlite:///{tmp_path}/synmag.db")
    monkeypatch.setenv("SYNMAG_STORE_URL", f"file://{tmp_path}/store")
    monkeypatch.setenv("SYNMAG_MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SYNMAG_BUNDLED_MODEL_DIR", str(tmp_path / "bundled"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _registered(settings, tmp_path) -> str:
    reg = Registry(settings)
    mv = reg.register(make_onnx(tmp_path / "a.onnx"), metrics=metrics(0.7, 0.8), report=None,
                      lineage={"config": "smoke.toml"})
    reg.promote(mv.version)
    reg.engine.dispose()
    return mv.version


def test_migrate_reports_revision(env, capsys):
    assert run("migrate") == 0
    assert "revision 0004" in capsys.readouterr().out


def test_models_json_shape(env, tmp_path, capsys):
    version = _registered(env, tmp_path)
    assert run("models", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert row["version"] == version and row["status"] == "production"
    assert len(row["sha256"]) == 64
    assert datetime.fromisoformat(row["created_at"]).utcoffset() == timedelta(0)
    assert set(row["metrics"]["baselines"]) == {"zero", "persistence"}
    assert row["metrics"]["model"]["r_bin8"]["mean"] == 0.7


def test_models_table_lists_versions(env, tmp_path, capsys):
    version = _registered(env, tmp_path)
    assert run("models") == 0
    out = capsys.readouterr().out
    assert version in out and "0.700/-/0.500" in out


def test_models_on_empty_database(env, capsys):
    assert run("models", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_products_json_shape_newest_last(env, tmp_path, capsys):
    version = _registered(env, tmp_path)
    engine = make_engine(env)
    t0 = datetime(2026, 11, 21, 12, 3, 41, tzinfo=UTC)
    with session_scope(engine) as s:
        for i in (1, 0):  # inserted newest first
            t = t0 + timedelta(minutes=i)
            frame = InputFrame(
                source="gong", filename=f"f{i}.fits.fz", url=f"http://x/f{i}.fits.fz", site="LE",
                obs_time=t, obs_minute=utc_minute(t), sha256=str(i) * 64, size_bytes=1, accepted=True,
            )
            s.add(frame)
            s.flush()
            s.add(Product(
                source="gong", input_frame_id=frame.id, obs_time=t, obs_minute=utc_minute(t), site="LE",
                model_version=version, preprocess_version="1", fits_uri=f"file:///p{i}.fits",
                png_uri=f"file:///p{i}.png", fits_sha256="f" * 64,
            ))
    engine.dispose()
    assert run("products", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["input_url"] for r in rows] == ["http://x/f0.fits.fz", "http://x/f1.fits.fz"]
    for key in ("id", "obs_time", "site", "input_url", "input_sha256", "model_version",
                "preprocess_version", "fits_uri", "png_uri", "created_at"):
        assert rows[0][key] is not None, key
    assert rows[0]["obs_time"] == "2026-11-21T12:03:41Z"
    assert run("products", "--json", "--since", "2026-11-21T12:04Z") == 0
    assert [r["input_sha256"] for r in json.loads(capsys.readouterr().out)] == ["1" * 64]


def test_products_bad_since_is_usage_error(env):
    with pytest.raises(UsageError, match="--since"):
        run("products", "--since", "yesterday-ish")
