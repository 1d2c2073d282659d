"""Verification against HMI: truth sources, the hmi_prep equivalent, scores stored and exported."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.time import Time

from service.verification.prep import prep_to_frame
from service.verification.truth import (
    LocalTruthSource,
    build_query,
    header_from_record,
    parse_jsoc_time,
    select_record,
)


# --------------------------------------------------------------------------- JSOC parsing
def test_jsoc_query_is_a_tai_window_around_the_time() -> None:
    t = datetime(2014, 3, 19, 0, 0, 54, tzinfo=UTC)  # TAI - UTC = 35 s in 2014
    assert build_query("hmi.M_720s_nrt", t) == "hmi.M_720s_nrt[2014.03.18_23:55:29_TAI/12m]"


def test_jsoc_times_parse_to_utc() -> None:
    assert parse_jsoc_time("2014.03.19_00:00:00_TAI") == datetime(2014, 3, 18, 23, 59, 25, tzinfo=UTC)
    assert parse_jsoc_time("2014.03.19_00:01:07.50_TAI").second == 32
    assert parse_jsoc_time("MISSING") is None


# Keyword rows as drms returns them for hmi.M_720s (values from a real 2014-03-19 record).
RECORDS = pd.DataFrame([
    {"T_REC": "2014.03.19_00:00:00_TAI", "T_OBS": "2014.03.19_00:00:44.70_TAI", "QUALITY": 0,
     "CROTA2": 180.0826, "CDELT1": 0.504297, "CDELT2": 0.504297, "CRPIX1": 2049.3, "CRPIX2": 2047.2,
     "CRVAL1": 0.0, "CRVAL2": 0.0, "RSUN_OBS": 964.2, "DSUN_OBS": 1.4888e11, "CRLN_OBS": 20.1,
     "CRLT_OBS": -7.1},
    # nearer to the product, but flagged (QUALITY bit 10: missing data / eclipse)
    {"T_REC": "2014.03.19_00:00:00_TAI", "T_OBS": "2014.03.19_00:01:30.00_TAI", "QUALITY": 1024,
     "CROTA2": 180.0826, "CDELT1": 0.504297, "CDELT2": 0.504297, "CRPIX1": 2049.3, "CRPIX2": 2047.2,
     "CRVAL1": 0.0, "CRVAL2": 0.0, "RSUN_OBS": 964.2, "DSUN_OBS": 1.4888e11, "CRLN_OBS": 13.5,
     "CRLT_OBS": -7.1},
    {"T_REC": "2014.03.19_00:12:00_TAI", "T_OBS": "MISSING", "QUALITY": 0, "CROTA2": float("nan")},
])


def test_select_record_skips_bad_quality_and_missing() -> None:
    t = datetime(2014, 3, 19, 0, 0, 54, tzinfo=UTC)
    assert select_record(RECORDS, t) == 0  # row 1 is nearer but QUALITY != 0; row 2 is MISSING
    assert select_record(RECORDS, t + timedelta(hours=1)) is None


def test_header_from_record_builds_a_rotated_helioprojective_wcs() -> None:
    from service.verification.prep import _wcs

    header = header_from_record(RECORDS.iloc[0].to_dict())
    assert header["DATE-OBS"].startswith("2014-03-19T00:00:09")
    assert header["HGLT_OBS"] == -7.1
    wcs = _wcs(header)
    assert wcs.wcs.ctype[0] == "HPLN-TAN"
    assert abs(wcs.wcs.get_pc()[0, 0] + 1) < 1e-3  # CROTA2 ~ 180: the image is upside down


# --------------------------------------------------------------------------- prep
def test_prep_rotates_rescales_and_reprojects_onto_the_product_grid() -> None:
    from service.science.preprocess import ModelGeometry
    from service.science.product import geometry_header

    geometry = ModelGeometry.for_time(Time("2024-05-01T12:00:00"))
    target = dict(geometry_header(geometry))
    n, scale = 1024, geometry.arcsec_per_px * 0.9  # finer than the product, rotated 180 deg
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    x, y = -(xx - c) * scale, -(yy - c) * scale

    def field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 150 * np.sin(x / 150.0) * np.cos(y / 250.0)

    hmi = np.where(np.hypot(x, y) <= geometry.rsun_arcsec, field(x, y), np.nan)
    header = {**target, "CDELT1": scale, "CDELT2": scale, "CRPIX1": c + 1, "CRPIX2": c + 1, "CROTA2": 180.0}
    out = prep_to_frame(hmi, header, target, oversample=1)
    yy, xx = np.mgrid[0:1024, 0:1024].astype(float)
    px = (xx - (target["CRPIX1"] - 1)) * geometry.arcsec_per_px
    py = (yy - (target["CRPIX2"] - 1)) * geometry.arcsec_per_px
    inner = np.hypot(px, py) < 0.95 * geometry.rsun_arcsec
    assert np.isnan(out[0, 0]) and np.isfinite(out[inner]).all()
    assert np.max(np.abs(out[inner] - field(px, py)[inner])) < 2.0  # Gauss, bilinear on a 150" wave


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_product_from_real_halpha_scored_against_its_real_hmi(data_dir: Path, val_pair, tiny_onnx,
                                                              tmp_path: Path) -> None:
    from service import observability as obs
    from service.db import InputFrame, ModelVersion, Product, make_engine, session_scope
    from service.db.migrate import upgrade
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import run_frame
    from service.science.dataset import read_halpha_u8
    from service.science.gong_writer import gong_filename, write_gong_frame
    from service.storage import open_store, product_key, sha256_hex
    from service.verification.verify import verify_product
    from tests.feedapp import make_settings

    halpha, _ = val_pair
    t = datetime.strptime(halpha.name[:19], "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)
    raw = write_gong_frame(read_halpha_u8(halpha), Time(t), "L", rng=1)
    name = gong_filename(Time(t), "L")
    model = OnnxGenerator(tiny_onnx)
    result = run_frame(raw, model, filename=name)

    settings = make_settings(tmp_path)
    engine = make_engine(settings)
    upgrade(settings, engine)
    store = open_store(settings)
    fits_uri = store.put(product_key(t, "L", model.version, "fits"), result.fits_bytes)
    with session_scope(engine) as s:
        s.add(ModelVersion(version=model.version, sha256=model.sha256, onnx_uri=tiny_onnx.as_uri(),
                           metrics={}, lineage={}, preprocess_version="1", status="production"))
        frame = InputFrame(filename=name, url=name, site="LE", site_letter="L", obs_time=t,
                           obs_minute=t, sha256=sha256_hex(raw), size_bytes=len(raw), accepted=True)
        s.add(frame)
        s.flush()
        product = Product(input_frame_id=frame.id, obs_time=t, obs_minute=t, site="LE",
                          model_version=model.version, preprocess_version="1", fits_uri=fits_uri,
                          fits_sha256=sha256_hex(result.fits_bytes))
        s.add(product)
        s.flush()
        verify_product(s, store, product, LocalTruthSource(root=data_dir / "val"))
        pid = product.id
    with session_scope(engine) as s:
        doc = s.get(Product, pid).verification
    assert doc["status"] == "scored" and doc["truth"]["file"].endswith("_hmi.webp")
    for reference in ("model", "zero"):
        assert math.isfinite(doc[reference]["psnr"]) and math.isfinite(doc[reference]["ssim"])
    assert math.isfinite(doc["model"]["r"]) and doc["zero"]["r"] is None  # r of a constant map: NaN -> null
    assert doc["model"]["n_pixels"] > 500_000
    gauge = obs.verification_score.labels(metric="psnr", reference="model")._value.get()
    assert gauge == pytest.approx(doc["model"]["psnr"])


def test_no_truth_is_recorded_and_retried_later(tmp_path: Path) -> None:
    from service.db import Product
    from service.verification.verify import due

    source = LocalTruthSource(root=tmp_path)  # an empty folder: no truth for any time
    assert source.fetch(datetime(2024, 5, 1, tzinfo=UTC)) is None
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    p = Product(obs_time=now - timedelta(hours=1))
    assert due(p, now)
    p.verification = {"status": "no_truth", "checked_at": (now - timedelta(minutes=5)).isoformat()}
    assert not due(p, now)
    p.verification["checked_at"] = (now - timedelta(hours=1)).isoformat()
    assert due(p, now)
    p.verification = {"status": "scored"}
    assert not due(p, now)
