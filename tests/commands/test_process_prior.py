"""``synmag process --prior-dir``: the nowcast serves frames with a prior, the H-alpha-only model the rest."""

from __future__ import annotations

import hashlib
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from service.cli import main as synmag

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, tiny_calibrated_onnx: Path, monkeypatch):
    """A fresh registry whose bundled H-alpha-only model is the tiny calibrated one."""
    from service.settings import get_settings

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    (bundled / "tiny.onnx").write_bytes(tiny_calibrated_onnx.read_bytes())
    (bundled / "model_card.md").write_text("# tiny\n")
    monkeypatch.setenv("SYNMAG_DATABASE_URL", f"sqlite:///{tmp_path}/synmag.db")
    monkeypatch.setenv("SYNMAG_STORE_URL", f"file://{tmp_path}/store")
    monkeypatch.setenv("SYNMAG_MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SYNMAG_BUNDLED_MODEL_DIR", str(bundled))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def prior_dir(val_pair, tmp_path_factory) -> Path:
    """The HMI of the val day before the frame's, as a level-1.5 FITS (what hmi_prep makes)."""
    from service.devtools.hmi_writer import level15_fits_bytes
    from service.science.dataset import pair_time, read_hmi_gauss

    days = sorted(val_pair[0].parent.glob("*_hmi.webp"))
    before = days[days.index(val_pair[1]) - 1]
    when = pair_time(before).to_datetime(timezone=UTC)
    folder = tmp_path_factory.mktemp("priors")
    (folder / f"hmi_{when:%Y%m%d_%H%M%S}.fits").write_bytes(level15_fits_bytes(read_hmi_gauss(before), when))
    return folder


def _product(out: Path) -> fits.HDUList:
    (path,) = out.glob("*.fits")
    return fits.open(path)


def test_a_frame_with_a_prior_is_a_nowcast_that_names_it(env, real_frame_paths, tiny_nowcast_onnx, prior_dir):
    out = env / "out"
    assert synmag(["process", str(real_frame_paths["hpln"]), "--out", str(out), "--model", str(tiny_nowcast_onnx),
                   "--prior-dir", str(prior_dir)]) == 0
    (prior_file,) = prior_dir.iterdir()
    with _product(out) as hdul:
        h = hdul[0].header
        assert h["MODKIND"] == "nowcast" and h["MODELVER"] == "tiny-nowcast-test"
        assert 20.0 < float(h["PRIORAGE"]) < 28.0
        assert h["PRIORSHA"] == hashlib.sha256(prior_file.read_bytes()).hexdigest()
        assert h["PRIORSRC"] == prior_file.name and "PRIORWHY" not in h
        assert [x.name for x in hdul[1:]] == ["SIGMA", "CONFIDENCE"]
        conf = hdul["CONFIDENCE"].data
        on = np.isfinite(hdul[0].data)
        assert np.array_equal(on, np.isfinite(conf)) and ((conf[on] >= 0) & (conf[on] <= 1)).all()


def test_a_prior_too_young_for_min_age_falls_back_and_says_why(env, real_frame_paths, tiny_nowcast_onnx, prior_dir):
    out = env / "out"
    assert synmag(["process", str(real_frame_paths["hpln"]), "--out", str(out), "--model", str(tiny_nowcast_onnx),
                   "--prior-dir", str(prior_dir), "--prior-min-age", "48"]) == 0
    with _product(out) as hdul:
        h = hdul[0].header
        assert h["MODKIND"] == "halpha" and h["MODELVER"] == "tiny-calibrated"
        assert "48-168 h" in h["PRIORWHY"] and "PRIOROBS" not in h


def test_without_prior_dir_the_halpha_model_serves_with_its_layers(env, real_frame_paths):
    out = env / "out"
    assert synmag(["process", str(real_frame_paths["hpln"]), "--out", str(out)]) == 0
    with _product(out) as hdul:
        assert hdul[0].header["MODKIND"] == "halpha" and hdul[0].header["PRIORWHY"]
        assert hdul["SIGMA"].header["BUNIT"] == "Gauss"


def test_layers_read_as_sunpy_maps(env, real_frame_paths):
    import sunpy.map

    out = env / "out"
    assert synmag(["process", str(real_frame_paths["hpln"]), "--out", str(out)]) == 0
    (path,) = out.glob("*.fits")
    field, sigma, confidence = sunpy.map.Map(path)
    assert sigma.unit.to_string() in ("G", "Gauss") and sigma.date == field.date
    assert confidence.reference_coordinate == field.reference_coordinate


def test_prior_min_age_out_of_range_is_refused(env, real_frame_paths, capsys):
    assert synmag(["process", str(real_frame_paths["hpln"]), "--out", str(env / "o"), "--prior-min-age", "-1"]) != 0
    assert "--prior-min-age" in capsys.readouterr().err
