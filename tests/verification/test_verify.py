"""Verification against HMI: truth sources, the hmi_prep equivalent, scores stored and exported."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time

from service.sources.magnetograms.dataset import DatasetFolderSource
from service.verification.prep import prep_to_frame


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
        verify_product(s, store, product, DatasetFolderSource(data_dir / "val"))
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

    source = DatasetFolderSource(tmp_path)  # an empty folder: no truth for any time
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
