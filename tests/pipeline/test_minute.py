"""process_minute end to end in-process: replay archive, SQLite, file store, tiny ONNX model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import delete, select

from service.db import (
    InputFrame,
    MinuteState,
    Product,
    Rejection,
    session_scope,
)
from service.devtools.replay import Faults
from service.pipeline.minute import process_minute
from service.science.cycles import polarity_sign
from tests.pipeline_world import World

pytestmark = pytest.mark.slow


def _product(w: World) -> Product:
    with session_scope(w.ctx.sessions) as s:
        return s.scalars(select(Product)).one()


def test_a_minute_makes_one_product_with_provenance(world):
    w = world()
    out = process_minute(w.minute(), w.ctx)
    assert out.outcome == "product", out.detail
    p = _product(w)
    with session_scope(w.ctx.sessions) as s:
        frame = s.get(InputFrame, p.input_frame_id)
        reasons = list(s.scalars(select(Rejection.reason)))
        scores = {f.site: f.quality["score"] for f in s.scalars(select(InputFrame))}
    # Both sites publish the same image with other noise: the better gate score wins,
    # whichever site that is on the day the test runs.
    assert set(scores) == {"BB", "LE"} and p.site == max(scores, key=scores.get)
    assert (p.model_version, p.preprocess_version) == ("tiny-test", "1")
    assert p.obs_minute == w.minute() and frame.raw_uri and len(frame.sha256) == 64
    assert reasons == ["not_selected"]  # the other site's frame of the same minute
    header = fits.getheader(io.BytesIO(w.ctx.store.get(w.ctx.store.key_for(p.fits_uri))))
    assert header["INSHA256"] == frame.sha256 and header["MODELVER"] == "tiny-test"
    # The replay serves the real frames as if observed now: Hale's law of the current cycle.
    sign = polarity_sign(w.minute(), 24)
    assert p.polarity_sign == sign and header["POLSIGN"] == str(sign)
    assert {"download", "decode", "gate", "preprocess", "inference", "write"} <= set(p.timings)

    again = process_minute(w.minute(), w.ctx)
    assert again.outcome == "exists" and again.product_id == p.id
    assert w.count(Product) == 1


def test_objects_without_a_row_are_verified_and_adopted(world):
    w = world()
    first = process_minute(w.minute(), w.ctx)
    fits_uri = _product(w).fits_uri
    with session_scope(w.ctx.sessions) as s:  # as if the process died before its commit
        s.execute(delete(Product))
        s.execute(delete(MinuteState))
    out = process_minute(w.minute(), w.ctx)
    assert (first.outcome, out.outcome) == ("product", "repaired")
    assert _product(w).fits_uri == fits_uri and w.count(Product) == 1


def test_the_row_records_the_polarity_sign_also_when_adopted(world):
    w = world(model_solar_cycle=25)  # the other Hale parity than the default (24)
    sign = polarity_sign(w.minute(), 25)
    assert sign == -polarity_sign(w.minute(), 24)
    assert process_minute(w.minute(), w.ctx).outcome == "product"
    assert _product(w).polarity_sign == sign
    with session_scope(w.ctx.sessions) as s:
        s.execute(delete(Product))
        s.execute(delete(MinuteState))
    assert process_minute(w.minute(), w.ctx).outcome == "repaired"
    assert _product(w).polarity_sign == sign  # read back from the adopted FITS header


def test_a_row_whose_object_vanished_gets_it_back(world):
    w = world()
    process_minute(w.minute(), w.ctx)
    p = _product(w)
    path = Path(w.ctx.store.uri_for(w.ctx.store.key_for(p.fits_uri)).removeprefix("file://"))
    path.unlink()
    out = process_minute(w.minute(), w.ctx)
    assert out.outcome == "repaired" and path.is_file()
    header = fits.getheader(path)
    assert header["MODELVER"] == "tiny-test"


def test_a_vanished_product_without_its_archived_input_fails_with_the_reason(world):
    w = world()
    process_minute(w.minute(), w.ctx)
    p = _product(w)
    with session_scope(w.ctx.sessions) as s:
        raw_uri = s.get(InputFrame, p.input_frame_id).raw_uri
    for uri in (p.fits_uri, raw_uri):
        Path(uri.removeprefix("file://")).unlink()
    out = process_minute(w.minute(), w.ctx)
    assert out.outcome == "failed" and "is not archived intact (missing)" in out.detail


def test_frames_truncated_at_the_source_are_rejected_with_a_reason(world):
    w = world(Faults(short_file_every=1))
    out = process_minute(w.minute(), w.ctx)
    assert out.outcome == "rejected"
    with session_scope(w.ctx.sessions) as s:
        rows = list(s.scalars(select(Rejection)))
        state = s.get(MinuteState, w.minute())
    assert {r.reason for r in rows} <= {"truncated", "corrupt_fits"} and len(rows) == 2
    assert {r.stage for r in rows} == {"decode"} and state.state == "rejected"
    assert w.count(Product) == 0


def test_without_a_model_minutes_are_skipped(world):
    w = world(model=False)
    out = process_minute(w.minute(), w.ctx)
    assert out.outcome == "no_model"
    with session_scope(w.ctx.sessions) as s:
        assert s.get(MinuteState, w.minute()).state == "skipped"


def test_a_bad_frame_never_costs_a_minute_that_has_a_good_one(tiny_onnx, tmp_path, synthetic_disk_u8):
    """Issue 19's reproduction: one site's frame with an unusable CUNIT1 beside a good one."""
    import hashlib
    from datetime import UTC, datetime

    from service.devtools.gong_writer import write_gong_frame
    from service.pipeline.wiring import open_pipeline
    from service.settings import Settings
    from service.sources.base import Download
    from service.sources.gong.archive import GongArchive, remote_frame

    minute = datetime(2024, 2, 16, 0, 0, tzinfo=UTC)
    files = {
        "20240216000014Bh.fits.fz": write_gong_frame(
            synthetic_disk_u8, "2024-02-16T00:00:14", "B", "hpln", None, header_overrides={"CUNIT1": 7}, rng=1),
        "20240216000034Lh.fits.fz": write_gong_frame(
            synthetic_disk_u8, "2024-02-16T00:00:34", "L", "hpln", None, rng=2),
    }

    class Scripted(GongArchive):  # the real GONG reader and names, files from memory
        def list_recent(self, now, since, deadline=None):
            return [remote_frame(n, self.base_url) for n in files]

        def download(self, frame, deadline=None):
            data = files[frame.name]
            return Download(frame, data, hashlib.sha256(data).hexdigest(), 0.0)

    settings = Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite", store_url=f"file://{tmp_path}/store",
                        model=str(tiny_onnx), model_cache_dir=tmp_path / "cache", bundled_model_dir=tmp_path / "none")
    pipeline = open_pipeline(settings)
    pipeline.ctx.sources = {"gong": Scripted(settings)}
    try:
        out = process_minute(minute, pipeline.ctx)
        assert out.outcome == "product" and out.site == "LE", out.detail
        assert out.rejected == {"20240216000014Bh.fits.fz": ["absurd_header"]}
    finally:
        pipeline.close()
