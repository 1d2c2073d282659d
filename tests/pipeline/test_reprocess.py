"""Backfill of past minutes with another model version (service.pipeline.reprocess, synmag reprocess)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select

from service.cli import main as synmag
from service.db import InputFrame, Product, Rejection, session_scope
from service.pipeline.context import PipelineContext
from service.pipeline.minute import process_minute
from service.pipeline.reprocess import reprocess
from service.settings import Settings
from tests.pipeline_world import World

pytestmark = pytest.mark.slow


@dataclass
class Feed:
    """Two minutes made by model ``tiny-test``; ``open(model, **settings)`` is another pipeline on its stores."""

    first: World
    other_model: Path
    make: Callable[..., World]

    @property
    def minutes(self) -> list:
        return [self.first.minute(k) for k in (0, 1)]

    @property
    def settings(self) -> Settings:
        return self.first.settings

    def open(self, model: Path, **settings) -> PipelineContext:
        return self.make(model=model, **settings).ctx


@pytest.fixture
def feed(world, tiny_onnx_factory) -> Feed:
    f = Feed(world(), tiny_onnx_factory(version="tiny-b"), world)
    assert [process_minute(m, f.first.ctx).outcome for m in f.minutes] == ["product", "product"]
    return f


def _rows(ctx: PipelineContext) -> dict[str, list[Product]]:
    with session_scope(ctx.sessions) as s:
        rows = s.scalars(select(Product).order_by(Product.id)).all()
    out: dict[str, list[Product]] = {}
    for row in rows:
        out.setdefault(row.model_version, []).append(row)
    return out


def test_each_minute_gets_the_new_version_from_the_same_input(feed) -> None:
    ctx = feed.open(feed.other_model)
    before = _rows(ctx)["tiny-test"]
    frames, rejections = feed.first.count(InputFrame), feed.first.count(Rejection)
    outcomes = reprocess(ctx, feed.minutes[0], feed.minutes[1] + timedelta(minutes=1))
    assert [o.outcome for o in outcomes] == ["product", "product"]
    rows = _rows(ctx)
    assert [(r.id, r.fits_sha256) for r in rows["tiny-test"]] == [(r.id, r.fits_sha256) for r in before]
    assert [r.input_frame_id for r in rows["tiny-b"]] == [r.input_frame_id for r in before]
    assert [r.obs_minute for r in rows["tiny-b"]] == feed.minutes
    header = fits.getheader(io.BytesIO(ctx.store.get(ctx.store.key_for(rows["tiny-b"][0].fits_uri))))
    with session_scope(ctx.sessions) as s:
        sha = s.get(InputFrame, before[0].input_frame_id).sha256
    assert header["MODELVER"] == "tiny-b" and header["INSHA256"] == sha
    assert (feed.first.count(InputFrame), feed.first.count(Rejection)) == (frames, rejections)


def test_a_second_run_adds_nothing(feed) -> None:
    ctx = feed.open(feed.other_model)
    reprocess(ctx, feed.minutes[0], feed.minutes[1] + timedelta(minutes=1))
    again = reprocess(ctx, feed.minutes[0], feed.minutes[1] + timedelta(minutes=1))
    assert [o.outcome for o in again] == ["exists", "exists"] and feed.first.count(Product) == 4


def test_a_damaged_archived_input_fails_the_minute_and_keeps_the_old_product(feed) -> None:
    ctx = feed.open(feed.other_model)
    old = _rows(ctx)["tiny-test"][0]
    with session_scope(ctx.sessions) as s:
        raw_uri = s.get(InputFrame, old.input_frame_id).raw_uri
    Path(raw_uri.removeprefix("file://")).write_bytes(b"SIMPLE  = T / not the archived frame")
    (out,) = reprocess(ctx, feed.minutes[0], feed.minutes[0] + timedelta(minutes=1))
    assert out.outcome == "failed" and "sha256 differs" in out.detail
    assert "tiny-b" not in _rows(ctx) and ctx.store.exists(ctx.store.key_for(old.fits_uri))


def test_a_frame_the_gate_now_refuses_is_reported_and_nothing_is_written(feed) -> None:
    ctx = feed.open(feed.other_model, gate_min_sharpness=1e9)
    rejections = feed.first.count(Rejection)
    (out,) = reprocess(ctx, feed.minutes[0], feed.minutes[0] + timedelta(minutes=1))
    assert out.outcome == "rejected" and "sharp" in out.detail
    assert "tiny-b" not in _rows(ctx) and feed.first.count(Rejection) == rejections


def test_the_command_backfills_and_counts(feed, monkeypatch, capsys) -> None:
    s = feed.settings
    for key, value in {"DATABASE_URL": s.database_url, "STORE_URL": s.store_url, "GONG_BASE_URL": s.gong_base_url,
                       "MODEL_CACHE_DIR": str(s.model_cache_dir), "BUNDLED_MODEL_DIR": str(s.bundled_model_dir)}.items():
        monkeypatch.setenv(f"SYNMAG_{key}", value)
    start = feed.minutes[0].isoformat()
    assert synmag(["reprocess", "--start", start, "--end", start]) == 2
    assert synmag(["reprocess", "--start", start, "--end", feed.minutes[1].isoformat(),
                   "--model", str(feed.other_model), "--cluster", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert '"outcome":"product"' in lines[0] and lines[-1] == "reprocessed 1 minutes with tiny-b: 1 product"
