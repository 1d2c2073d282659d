"""Verification: products scored against the real magnetogram of their minute, zero map and persistence beside."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time
from sqlalchemy import select

from service.sources.magnetograms.folder import FolderSource


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_product_from_real_halpha_scored_against_its_real_hmi(data_dir: Path, val_pair, tiny_onnx,
                                                              tmp_path: Path, monkeypatch) -> None:
    from service import observability as obs
    from service.verification import verify

    monkeypatch.setattr(verify, "_newest_verified", 0.0)  # gauges follow the newest: other tests verified 2024
    from service.db import InputFrame, ModelVersion, Product, make_engine, session_scope
    from service.db.migrate import upgrade
    from service.devtools.gong_writer import gong_filename, write_gong_frame
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import run_frame
    from service.science.dataset import read_halpha_u8
    from service.sources.gong.reader import read_gong
    from service.storage import open_store, product_key, sha256_hex
    from service.verification.verify import verify_product
    from tests.feedapp import make_settings

    halpha, _ = val_pair
    t = datetime.strptime(halpha.name[:19], "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)
    raw = write_gong_frame(read_halpha_u8(halpha), Time(t), "L", rng=1)
    name = gong_filename(Time(t), "L")
    model = OnnxGenerator(tiny_onnx)
    result = run_frame(raw, model, filename=name, reader=read_gong)

    settings = make_settings(tmp_path)
    engine = make_engine(settings)
    upgrade(settings, engine)
    store = open_store(settings)
    fits_uri = store.put(product_key(t, "gong", "LE", model.version, "fits"), result.fits_bytes)
    with session_scope(engine) as s:
        s.add(ModelVersion(version=model.version, sha256=model.sha256, onnx_uri=tiny_onnx.as_uri(),
                           metrics={}, lineage={}, preprocess_version="1", status="production"))
        frame = InputFrame(source="gong", filename=name, url=name, site="LE", obs_time=t,
                           obs_minute=t, sha256=sha256_hex(raw), size_bytes=len(raw), accepted=True)
        s.add(frame)
        s.flush()
        product = Product(source="gong", input_frame_id=frame.id, obs_time=t, obs_minute=t, site="LE",
                          model_version=model.version, preprocess_version="1", fits_uri=fits_uri,
                          fits_sha256=sha256_hex(result.fits_bytes))
        s.add(product)
        s.flush()
        verify_product(s, store, product, FolderSource(data_dir / "val"))
        pid = product.id
    with session_scope(engine) as s:
        doc = s.get(Product, pid).verification
    assert doc["status"] == "scored" and doc["truth"]["file"].endswith("_hmi.webp")
    assert doc["persistence_source"]["file"] < doc["truth"]["file"]  # an earlier val day
    assert 23.9 <= doc["persistence_source"]["age_h"] <= 48.0
    for reference in ("model", "zero", "persistence"):
        assert math.isfinite(doc[reference]["psnr"]) and math.isfinite(doc[reference]["ssim"])
    assert math.isfinite(doc["model"]["r"]) and doc["zero"]["r"] is None  # r of a constant map: NaN -> null
    assert doc["model"]["n_pixels"] > 500_000
    gauge = obs.verification_score.labels(metric="psnr", reference="model")._value.get()
    assert gauge == pytest.approx(doc["model"]["psnr"])
    gauge = obs.verification_score.labels(metric="r_bin8", reference="persistence")._value.get()
    assert gauge == pytest.approx(doc["persistence"]["r_bin8"])


def test_no_truth_is_recorded_and_retried_later(tmp_path: Path) -> None:
    from service.db import Product
    from service.verification.verify import due

    source = FolderSource(tmp_path)  # an empty folder: no truth for any time
    assert source.nearest(datetime(2024, 5, 1, tzinfo=UTC)) is None
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    p = Product(obs_time=now - timedelta(hours=1))
    assert due(p, now)
    p.verification = {"status": "no_truth", "checked_at": (now - timedelta(minutes=5)).isoformat()}
    assert not due(p, now)
    p.verification["checked_at"] = (now - timedelta(hours=1)).isoformat()
    assert due(p, now)
    p.verification = {"status": "scored"}
    assert not due(p, now)


# --------------------------------------------------------------------------- assess
def product_map(gauss: np.ndarray, t: datetime) -> tuple[np.ndarray, object]:
    """A model-frame map as a product file would give it: Gauss (NaN off the disk), disk geometry."""
    from service.science.preprocess import ModelGeometry
    from service.science.product import product_fits_bytes
    from service.verification.verify import read_product

    geometry = ModelGeometry.for_time(Time(t.replace(tzinfo=None), scale="utc"))
    pred, _, disk = read_product(product_fits_bytes(np.where(geometry.mask(), gauss, np.nan), geometry,
                                                    {"input_file": "x.fits.fz"}))
    return pred, disk


def test_model_zero_and_persistence_are_scored_on_the_same_pixels(tmp_path: Path) -> None:
    from service.verification.verify import assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 3)
    pred, disk = product_map(bipole_field(2), times[2])  # a perfect product of day 2
    doc = assess(pred, disk, times[2], None, FolderSource(tmp_path))
    assert doc["status"] == "scored" and doc["truth"]["offset_s"] == 0.0
    assert doc["model"]["r"] == pytest.approx(1.0, abs=1e-3)
    assert doc["persistence_source"]["file"].startswith("2014-03-20") and doc["persistence_source"]["age_h"] == 24.0
    assert doc["model"]["n_pixels"] == doc["zero"]["n_pixels"] == doc["persistence"]["n_pixels"]
    assert doc["persistence"]["r"] < 0.5  # yesterday's bipole, rotated, is not today's (it moved 30 px more)


def test_without_history_persistence_is_missing_with_its_reason(tmp_path: Path) -> None:
    from service.verification.verify import assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 1)
    pred, disk = product_map(bipole_field(0), times[0])
    doc = assess(pred, disk, times[0], None, FolderSource(tmp_path))
    assert doc["persistence"] is None
    assert doc["persistence_source"]["missing"].startswith("no usable magnetogram from dir observed 23.9-48 h")


def test_a_missing_truth_is_one_line_with_the_reason(tmp_path: Path) -> None:
    from service.verification.verify import assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 1)
    pred, disk = product_map(bipole_field(0), times[0] + timedelta(hours=1))
    doc = assess(pred, disk, times[0] + timedelta(hours=1), None, FolderSource(tmp_path))
    assert doc == {"status": "no_truth", "source": "dir",
                   "reason": "no usable magnetogram from dir within 6 min of 2014-03-19T01:00:54+00:00"}


@pytest.mark.slow
def test_real_hmi_through_jsoc_level1_scores_as_itself_and_persistence_as_a_day_ago(data_dir: Path) -> None:
    """The dataset's HMI of a day as the product, verified against the stand-in JSOC's level-1 of that day."""
    from service.devtools.jsoc_standin import JsocStandin, serve_in_thread
    from service.science.dataset import read_hmi_gauss
    from service.settings import Settings
    from service.sources.magnetograms.files import stem_time
    from service.sources.magnetograms.jsoc import JsocSource
    from service.verification.verify import assess

    hmi = sorted((data_dir / "val").glob("*_hmi.webp"))[1]  # 2014-03-20: the 19th is a day before
    t = stem_time(hmi.name)
    server, url = serve_in_thread(JsocStandin(data_dir / "val", naxis=2048))
    try:
        with JsocSource.from_settings(Settings(jsoc_url=url)) as source:
            pred, disk = product_map(read_hmi_gauss(hmi), t)
            doc = assess(pred, disk, t, None, source)
    finally:
        server.shutdown()
        server.server_close()
    assert doc["truth"]["origin"] == "hmi.M_720s_nrt" and abs(doc["truth"]["offset_s"]) < 360
    assert doc["model"]["r"] > 0.95 and doc["model"]["ppa_10"] > 0.9  # level 1 and back: itself
    assert 23.9 < doc["persistence_source"]["age_h"] < 24.2
    assert 0.3 < doc["persistence"]["r_bin8"] < doc["model"]["r_bin8"]


def test_the_service_stores_persistence_from_jsoc_and_exports_its_gauges(tmp_path: Path, monkeypatch) -> None:
    """``verify_pending`` (the scheduler's call) against the stand-in JSOC over HTTP, on recent products."""
    from service import observability as obs
    from service.db import InputFrame, ModelVersion, Product, make_engine, session_scope
    from service.db.migrate import upgrade
    from service.devtools.jsoc_standin import JsocStandin, serve_in_thread
    from service.science.preprocess import ModelGeometry
    from service.science.product import product_fits_bytes
    from service.settings import Settings
    from service.sources.magnetograms.jsoc import JsocSource
    from service.storage import open_store, product_key
    from service.verification import verify
    from tests.feedapp import make_settings
    from tests.hmi_days import bipole_field, write_days

    monkeypatch.setattr(verify, "_newest_verified", 0.0)
    start = datetime.now(UTC).replace(minute=0, second=30, microsecond=0) - timedelta(days=2)
    times = write_days(tmp_path / "days", 2, start=start)
    settings = make_settings(tmp_path)
    engine = make_engine(settings)
    upgrade(settings, engine)
    store = open_store(settings)
    geometry = ModelGeometry.for_time(Time(times[1].replace(tzinfo=None), scale="utc"))
    fits_bytes = product_fits_bytes(np.where(geometry.mask(), bipole_field(1), np.nan), geometry,
                                    {"input_file": "x.fits.fz"})
    uri = store.put(product_key(times[1], "gong", "LE", "v0", "fits"), fits_bytes)
    with session_scope(engine) as s:
        s.add(ModelVersion(version="v0", sha256="0" * 64, onnx_uri="file:///m.onnx", metrics={}, lineage={},
                           preprocess_version="1", status="production"))
        frame = InputFrame(source="gong", filename="x.fits.fz", url="x", site="LE", obs_time=times[1],
                           obs_minute=times[1], sha256="1" * 64, size_bytes=1, accepted=True)
        s.add(frame)
        s.flush()
        s.add(Product(source="gong", input_frame_id=frame.id, obs_time=times[1], obs_minute=times[1], site="LE",
                      model_version="v0", preprocess_version="1", fits_uri=uri, fits_sha256="2" * 64))
    server, url = serve_in_thread(JsocStandin(tmp_path / "days", naxis=512))
    try:
        with JsocSource.from_settings(Settings(jsoc_url=url)) as source:
            assert verify.verify_pending(engine, store, source, limit=2) == 1
    finally:
        server.shutdown()
        server.server_close()
    with session_scope(engine) as s:
        doc = s.scalars(select(Product)).one().verification
    assert doc["status"] == "scored" and doc["truth"]["origin"] == "hmi.M_720s_nrt"
    assert doc["persistence_source"]["origin"] == "hmi.M_720s_nrt" and 23.9 < doc["persistence_source"]["age_h"] < 24.1
    gauge = obs.verification_score.labels(metric="r", reference="persistence")._value.get()
    assert gauge == pytest.approx(doc["persistence"]["r"])


# --------------------------------------------------------------------------- nowcast: its own prior
def test_a_nowcast_is_scored_against_the_persistence_of_its_own_prior(tmp_path: Path) -> None:
    from service.verification.verify import PriorRef, assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 3)
    pred, disk = product_map(bipole_field(2), times[2])
    doc = assess(pred, disk, times[2], None, FolderSource(tmp_path), prior=PriorRef(times[0]))
    ps = doc["persistence_source"]
    assert ps["of"] == "prior" and ps["file"].startswith("2014-03-19") and ps["age_h"] == 48.0
    assert "prior_missing" not in ps


def test_the_prior_is_recognised_as_the_very_file_by_its_sha256(tmp_path: Path) -> None:
    from service.verification.verify import PriorRef, assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 3)
    day0 = FolderSource(tmp_path).newest_before(times[0], timedelta(0), timedelta(0))
    pred, disk = product_map(bipole_field(2), times[2])
    same = assess(pred, disk, times[2], None, FolderSource(tmp_path), prior=PriorRef(times[0], day0.sha256))
    other = assess(pred, disk, times[2], None, FolderSource(tmp_path), prior=PriorRef(times[0], "0" * 64))
    assert same["persistence_source"]["same_file"] is True
    assert other["persistence_source"]["same_file"] is False


def test_a_prior_the_truth_source_lacks_falls_back_to_one_day_persistence(tmp_path: Path) -> None:
    from service.verification.verify import PriorRef, assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 3)
    pred, disk = product_map(bipole_field(2), times[2])
    doc = assess(pred, disk, times[2], None, FolderSource(tmp_path),
                 prior=PriorRef(times[0] - timedelta(days=3), origin="hmi.M_720s_nrt"))
    ps = doc["persistence_source"]
    assert ps["of"] == "one_day" and ps["age_h"] == 24.0
    assert ps["prior_missing"] == "the product's prior (hmi.M_720s_nrt 2014-03-16T00:00:54+00:00) is not in dir"


def test_a_product_without_prior_gets_one_day_persistence(tmp_path: Path) -> None:
    from service.verification.verify import assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 3)
    pred, disk = product_map(bipole_field(2), times[2])
    doc = assess(pred, disk, times[2], None, FolderSource(tmp_path))
    assert doc["persistence_source"]["of"] == "one_day"


def test_the_prior_ref_is_read_from_the_product_file_header() -> None:
    from astropy.io import fits

    from service.verification.verify import PriorRef

    header = fits.Header({"PRIOROBS": "2014-03-19T00:00:54.300", "PRIORSHA": "ab" * 32, "PRIORSRC": "hmi.M_720s"})
    assert PriorRef.of_header(header) == PriorRef(datetime(2014, 3, 19, 0, 0, 54, 300000, tzinfo=UTC),
                                                  "ab" * 32, "hmi.M_720s")
    assert PriorRef.of_header(fits.Header({"PRIORWHY": "no prior source configured"})) is None


# --------------------------------------------------------------------------- calibration of the layers
def layered_product(gauss: np.ndarray, sigma: float, confidence: float, t: datetime) -> bytes:
    """Product FITS bytes with constant SIGMA and CONFIDENCE layers (NaN off the disk)."""
    from service.science.preprocess import ModelGeometry
    from service.science.product import product_fits_bytes

    geometry = ModelGeometry.for_time(Time(t.replace(tzinfo=None), scale="utc"))
    on = geometry.mask()
    return product_fits_bytes(np.where(on, gauss, np.nan), geometry, {"input_file": "x.fits.fz"},
                              sigma=np.where(on, sigma, np.nan), confidence=np.where(on, confidence, np.nan))


def test_calibration_of_the_layers_is_scored_on_the_strong_pixels(tmp_path: Path) -> None:
    from service.verification.verify import assess, read_product_map
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 1)
    m = read_product_map(layered_product(bipole_field(0), 10.0, 0.9, times[0]))
    doc = assess(m.gauss, m.geometry, times[0], None, FolderSource(tmp_path), sigma=m.sigma, confidence=m.confidence)
    cal = doc["calibration"]
    # a perfect product: every strong pixel's sign right and within 10 G; stated 0.9 -> ECE 0.1
    assert 400 < cal["n"] <= 2 * 16 * 16 + 200 and cal["strong_g"] == 20.0
    assert cal["sign_right"] == 1.0 and cal["coverage"] == 1.0
    assert cal["ece"] == pytest.approx(0.1, abs=1e-6)


def test_a_product_without_layers_has_no_calibration(tmp_path: Path) -> None:
    from service.verification.verify import assess
    from tests.hmi_days import bipole_field, write_days

    times = write_days(tmp_path, 1)
    pred, disk = product_map(bipole_field(0), times[0])
    assert assess(pred, disk, times[0], None, FolderSource(tmp_path))["calibration"] is None


def test_the_service_scores_a_nowcast_with_its_prior_and_sets_calibration_gauges(tmp_path: Path, monkeypatch) -> None:
    """``verify_product`` on a stored nowcast row: its prior from ``prior_obs``, gauges by kind."""
    from service import observability as obs
    from service.db import InputFrame, ModelVersion, Product, make_engine, session_scope
    from service.db.migrate import upgrade
    from service.storage import open_store, product_key
    from service.verification import verify
    from tests.feedapp import make_settings
    from tests.hmi_days import bipole_field, write_days

    monkeypatch.setattr(verify, "_newest_calibrated", {})
    times = write_days(tmp_path / "days", 3)
    settings = make_settings(tmp_path)
    engine = make_engine(settings)
    upgrade(settings, engine)
    store = open_store(settings)
    uri = store.put(product_key(times[2], "gong", "LE", "n0", "fits"), layered_product(bipole_field(2), 10.0, 0.8, times[2]))
    with session_scope(engine) as s:
        s.add(ModelVersion(version="n0", kind="nowcast", sha256="0" * 64, onnx_uri="file:///m.onnx", metrics={},
                           lineage={}, preprocess_version="1", status="production"))
        frame = InputFrame(source="gong", filename="x.fits.fz", url="x", site="LE", obs_time=times[2],
                           obs_minute=times[2], sha256="1" * 64, size_bytes=1, accepted=True)
        s.add(frame)
        s.flush()
        product = Product(source="gong", input_frame_id=frame.id, obs_time=times[2], obs_minute=times[2], site="LE",
                          model_version="n0", preprocess_version="1", fits_uri=uri, fits_sha256="2" * 64,
                          model_kind="nowcast", prior_obs=times[0], prior_age_h=48.0, prior_source="dir")
        s.add(product)
        s.flush()
        doc = verify.verify_product(s, store, product, FolderSource(tmp_path / "days"))
    engine.dispose()
    assert doc["persistence_source"]["of"] == "prior" and doc["persistence_source"]["age_h"] == 48.0
    assert doc["calibration"]["ece"] == pytest.approx(0.2, abs=1e-6)
    gauge = obs.calibration_score.labels(metric="ece", kind="nowcast")._value.get()
    assert gauge == pytest.approx(0.2, abs=1e-6)
    assert obs.calibration_score.labels(metric="coverage", kind="nowcast")._value.get() == 1.0


def test_a_replay_drills_nowcast_finds_its_prior_again_in_the_replay(tmp_path: Path) -> None:
    """The prior the feed got from the replay archive is what verification's own-prior lookup finds."""
    from service.devtools.replay import ReplayArchive, serve_in_thread
    from service.settings import Settings
    from service.sources.magnetograms.replay import ReplaySource
    from service.verification.verify import PriorRef, persistence_for
    from tests.hmi_days import bipole_field, write_days

    write_days(tmp_path, 4, jitter_s=7)
    now = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC)
    archive = ReplayArchive(tmp_path, cadence_s=1, rewind_minutes=10, backlog=5, now=lambda: now)
    t = archive.frames_of_minute(3)[0].obs_time  # shows dataset day 3
    server, url = serve_in_thread(archive)
    try:
        with ReplaySource.from_settings(Settings(truth_url=url)) as source:
            prior = source.newest_before(t, timedelta(hours=30), timedelta(days=7))  # what the feed assimilated
            _, disk = product_map(bipole_field(3), t)
            _, described = persistence_for(source, t, disk, PriorRef(prior.obs_time, prior.sha256, prior.origin))
    finally:
        server.shutdown()
        server.server_close()
    assert described["of"] == "prior" and described["same_file"] is True
    assert described["age_h"] == pytest.approx((2 * 86400 + 14) / 3600)
