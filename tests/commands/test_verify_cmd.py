"""``synmag verify``: product files scored against the real magnetogram, with the zero map and persistence."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time

from service.cli import main
from service.science.metric_table import METRICS
from tests.hmi_days import bipole_field, write_days


def write_product(path: Path, gauss: np.ndarray, t: datetime) -> Path:
    """A product FITS of a model-frame map at ``t`` (as ``synmag process`` writes them)."""
    from service.science.preprocess import ModelGeometry
    from service.science.product import product_fits_bytes

    geometry = ModelGeometry.for_time(Time(t.replace(tzinfo=None), scale="utc"))
    path.write_bytes(product_fits_bytes(np.where(geometry.mask(), gauss, np.nan), geometry,
                                        {"input_file": "20140321000054Lh.fits.fz"}))
    return path


@pytest.fixture
def days(tmp_path: Path) -> tuple[Path, list[datetime]]:
    return tmp_path / "days", write_days(tmp_path / "days", 3)


def test_the_table_has_every_metric_for_model_zero_and_persistence(days, tmp_path: Path, capsys) -> None:
    folder, times = days
    product = write_product(tmp_path / "p.fits", bipole_field(2), times[2])
    assert main(["verify", str(product), "--truth", "dir", "--truth-dir", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "truth 2014-03-21T00_00_54_hmi.webp" in out[0]
    assert "persistence 2014-03-20T00_00_54_hmi.webp" in out[0] and "(24.0 h older)" in out[0]
    assert out[1].split() == ["metric", "model", "zero", "persistence"]
    assert [line[:48].strip() for line in out[2:]] == [m.label + (f" ({m.unit})" if m.unit else "") for m in METRICS]


def test_json_gives_the_documents_the_service_stores(days, tmp_path: Path, capsys) -> None:
    folder, times = days
    product = write_product(tmp_path / "p.fits", bipole_field(1), times[1])
    assert main(["verify", str(product), "--truth", "dir", "--truth-dir", str(folder), "--json"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["product"] == str(product) and doc["status"] == "scored"
    assert doc["model"]["r"] == pytest.approx(1.0, abs=1e-3)
    assert set(doc["persistence"]) >= {m.name for m in METRICS}


def test_a_product_without_truth_is_one_line_and_exit_1(days, tmp_path: Path, capsys) -> None:
    folder, times = days
    good = write_product(tmp_path / "good.fits", bipole_field(0), times[0])
    late = write_product(tmp_path / "late.fits", bipole_field(0), times[2].replace(hour=6))
    assert main(["verify", str(late), str(good), "--truth", "dir", "--truth-dir", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{late}: no_truth: no usable magnetogram from dir within 6 min of "
                      "2014-03-21T06:00:54+00:00")
    assert out[1].startswith(f"{good}: 2014-03-19T00:00:54")  # the next product is still scored


def test_a_file_that_is_no_product_is_one_line(days, tmp_path: Path, capsys) -> None:
    folder, _ = days
    (tmp_path / "x.fits").write_bytes(b"nope")
    assert main(["verify", str(tmp_path / "x.fits"), "--truth", "dir", "--truth-dir", str(folder)]) == 1
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'x.fits'}: failed: {tmp_path / 'x.fits'}: not a synmag product")


def test_against_a_jsoc_speaking_server(days, tmp_path: Path, capsys) -> None:
    from service.devtools.jsoc_standin import JsocStandin, serve_in_thread

    folder, times = days
    server, url = serve_in_thread(JsocStandin(folder, naxis=512))
    try:
        product = write_product(tmp_path / "p.fits", bipole_field(2), times[2])
        assert main(["verify", str(product), "--truth", "jsoc", "--jsoc-url", url, "--json"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["truth"]["origin"] == "hmi.M_720s_nrt" and doc["truth"]["quality"] == "0x00000000"
    assert doc["persistence_source"]["origin"] == "hmi.M_720s_nrt" and doc["persistence"] is not None
    assert doc["model"]["r"] > 0.9  # the same field, through a 512 px level 1 and back


def test_a_nowcast_file_is_scored_against_its_own_prior_with_its_calibration(days, tmp_path: Path, capsys) -> None:
    from service.science.preprocess import ModelGeometry
    from service.science.product import product_fits_bytes

    folder, times = days
    geometry = ModelGeometry.for_time(Time(times[2].replace(tzinfo=None), scale="utc"))
    on = geometry.mask()
    provenance = {"input_file": "20140321000054Lh.fits.fz", "model_kind": "nowcast",
                  "prior_obs": times[0].isoformat(), "prior_age_h": 48.0, "prior_source": "2014-03-19T00_00_54_hmi.webp"}
    product = tmp_path / "p.fits"
    product.write_bytes(product_fits_bytes(np.where(on, bipole_field(2), np.nan), geometry, provenance,
                                           sigma=np.where(on, 10.0, np.nan), confidence=np.where(on, 0.9, np.nan)))
    assert main(["verify", str(product), "--truth", "dir", "--truth-dir", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "persistence of its prior 2014-03-19T00_00_54_hmi.webp" in out[0] and "(48.0 h older)" in out[0]
    assert out[-1].startswith("calibration (|B| > 20 G, ") and "ECE 0.100" in out[-1]
    assert "within +-1 sigma 1.000" in out[-1]
