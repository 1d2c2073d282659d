"""``synmag metrics``: the bar (identical -> r = 1, PPA = 1; negated -> r = -1, PPA = 0)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from service.cli import main
from service.commands.metrics import geometry_from_header

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = ["0", "5", "10", "20", "30", "40", "50"]


def write_map(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header).writeto(path)
    return path


@pytest.fixture
def field() -> np.ndarray:
    """A 256x256 disk of smooth random field (G), NaN off the disk."""
    rng = np.random.default_rng(0)
    f = ndimage.gaussian_filter(rng.normal(0, 1, (256, 256)), 2)
    f = 60 * f / f.std()
    yy, xx = np.mgrid[:256, :256]
    return np.where((xx - 127.5) ** 2 + (yy - 127.5) ** 2 <= 110**2, f, np.nan)


def run_json(capsys, *argv: str) -> dict:
    assert main(["metrics", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_identical_maps(tmp_path, capsys, field):
    a = write_map(tmp_path / "a.fits", field)
    out = run_json(capsys, str(a), str(a))
    assert out["r"] == 1.0 and out["r_bin8"] == 1.0
    assert list(out["ppa"]) == THRESHOLDS and all(v == 1.0 for v in out["ppa"].values())
    assert out["psnr"] is None and out["mse"] == 0.0  # +inf is written as null
    assert out["ssim"] == pytest.approx(1.0)
    assert out["tumf_ratio"] == pytest.approx(1.0) and out["netflux_ratio"] == pytest.approx(1.0)


def test_negated_map(tmp_path, capsys, field):
    a = write_map(tmp_path / "a.fits", field)
    b = write_map(tmp_path / "b.fits", -field)
    out = run_json(capsys, str(b), str(a))
    assert out["r"] == pytest.approx(-1.0)
    assert all(v == 0.0 for v in out["ppa"].values())
    assert out["netflux_ratio"] == pytest.approx(-1.0)


def test_real_hmi_day_identical_through_the_console_script(tmp_path, val_pair):
    from service.science.dataset import read_hmi_gauss, read_hmi_u8

    on = ndimage.binary_fill_holes(read_hmi_u8(val_pair[1]) != 0)
    a = write_map(tmp_path / "truth.fits", np.where(on, read_hmi_gauss(val_pair[1]), np.nan))
    script = Path(sys.executable).with_name("synmag")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]
    done = subprocess.run(
        [*cmd, "metrics", str(a), str(a), "--json", "--regions"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
    )
    out = json.loads(done.stdout)
    assert out["r"] == 1.0 and out["r_bin8"] == 1.0
    assert all(v == 1.0 for v in out["ppa"].values())
    assert out["n_regions"] >= 1 and out["region_sign_agreement"] == 1.0


def test_real_hmi_day_negated(tmp_path, capsys, val_pair):
    from service.science.dataset import read_hmi_gauss, read_hmi_u8

    on = ndimage.binary_fill_holes(read_hmi_u8(val_pair[1]) != 0)
    truth = np.where(on, read_hmi_gauss(val_pair[1]), np.nan)
    a = write_map(tmp_path / "truth.fits", truth)
    b = write_map(tmp_path / "neg.fits", -truth)
    out = run_json(capsys, str(b), str(a), "--regions")
    assert out["r"] == pytest.approx(-1.0) and out["r_bin8"] == pytest.approx(-1.0)
    assert all(v == 0.0 for v in out["ppa"].values())  # HMI 0 G decodes to -0.78 G: no zeros
    assert out["region_sign_agreement"] == 0.0 and out["tumf_ratio"] == pytest.approx(1.0)


def test_table_output(tmp_path, capsys, field):
    a = write_map(tmp_path / "a.fits", field)
    b = write_map(tmp_path / "b.fits", field + 20.0)
    assert main(["metrics", str(b), str(a), "--regions"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^PSNR full disk \(dB\) +26\.02$", text, re.MULTILINE), text
    assert "PPA" in text and "AR net-flux sign agreement" in text


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.fits", "no such file"),
        (lambda d: _write_bytes(d / "junk.fits", b"SIMPLE  = not fits at all"), "not a readable FITS"),
        (lambda d: write_map(d / "cube.fits", np.zeros((2, 4, 4))), "3-D"),
        (lambda d: write_map(d / "small.fits", np.zeros((8, 8))), "shape mismatch"),
    ],
)
def test_bad_files_are_usage_errors(tmp_path, capsys, field, make, message):
    good = write_map(tmp_path / "good.fits", field)
    assert main(["metrics", str(make(tmp_path)), str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_geometry_from_an_hmi_like_header():
    h = fits.Header()
    h.update(
        CTYPE1="HPLN-TAN", CTYPE2="HPLT-TAN", CUNIT1="arcsec", CUNIT2="arcsec",
        CDELT1=2.0, CDELT2=2.0, CRPIX1=100.5, CRPIX2=90.5, CRVAL1=10.0, CRVAL2=-4.0,
        RSUN_OBS=950.0,
    )
    g = geometry_from_header(h)
    # Sun centre = reference pixel (0-based 99.5, 89.5) minus CRVAL / CDELT.
    assert g.center == pytest.approx((94.5, 91.5), abs=1e-3)
    assert g.radius_px == pytest.approx(475.0)
    assert geometry_from_header(fits.Header()) is None


def test_geometry_from_a_product_header(tmp_path):
    from astropy.time import Time

    from service.science.preprocess import ModelGeometry
    from service.science.product import write_product_fits

    geom = ModelGeometry.for_time(Time("2014-03-20T00:00:54"))
    gauss = np.where(geom.mask(), 1.0, np.nan).astype(np.float32)
    path = write_product_fits(tmp_path / "p.fits", gauss, geom, {"site": "BB"})
    g = geometry_from_header(fits.getheader(path))
    # Model frames and products share FITS row order: the centre is the same pixel.
    assert g.center == pytest.approx(geom.center, abs=1e-6)
    assert g.radius_px == pytest.approx(geom.radius_px, rel=1e-9)
