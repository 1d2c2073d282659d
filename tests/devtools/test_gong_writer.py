"""write_gong_frame: real layout, geometry consistent with the header, sunpy reads it."""

from __future__ import annotations

import io

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from service.devtools.gong_writer import gong_filename, synthetic_disk, write_gong_frame
from service.science.dataset import fit_disk


@pytest.mark.parametrize("generation", ["gongx", "hpln"])
def test_sunpy_reads_it_as_gong_halpha(synthetic_frame_path, generation):
    import sunpy.map
    from sunpy.map.sources import GONGHalphaMap

    path = synthetic_frame_path(generation, center=(1031.4, 1020.4), radius=890.0)
    m = sunpy.map.Map(path)
    assert isinstance(m, GONGHalphaMap)
    assert m.date.isot == "2024-02-16T00:00:02.000"
    assert u.allclose(m.reference_pixel.x, 1031.4 * u.pix)  # both 0-based
    assert u.allclose(m.reference_pixel.y, 1020.4 * u.pix)
    assert u.allclose(m.scale.axis1, m.rsun_obs / (890.0 * u.pix))


def test_layout_is_nso(synthetic_frame_path):
    with fits.open(synthetic_frame_path("hpln")) as hdul:
        assert hdul[0].data is None
        assert isinstance(hdul[1], fits.CompImageHDU)
        assert hdul[1].compression_type == "RICE_1"
        assert hdul[1].data.dtype == np.int16 and hdul[1].data.shape == (2048, 2048)
        assert hdul[1].header["CTYPE1"] == "HPLN-TAN"
        h = hdul[1].header
        assert h["CDELT1"] == pytest.approx(h["SOLAR-R"] / h["FNDLMBMI"], rel=1e-4)


def test_pixels_match_header_geometry(synthetic_disk_u8):
    raw = write_gong_frame(
        synthetic_disk_u8, "2014-06-01T00:00:14", "T", "gongx",
        center=(1020.0, 1030.0), radius=905.0, rng=0,
    )
    with fits.open(io.BytesIO(raw)) as hdul:
        data = hdul[1].data
    cx, cy, r = fit_disk(data, threshold=800)  # ~half the limb counts (~1700), above the sky halo (< 650)
    assert (cx, cy, r) == pytest.approx((1020.0, 1030.0, 905.0), abs=0.3)


def test_gongx_has_no_cdelt(synthetic_frame_path):
    header = fits.getheader(synthetic_frame_path("gongx"), 1)
    assert header["CTYPE1"] == "GONGX" and "CDELT1" not in header


def test_filename():
    assert gong_filename("2024-02-16T00:00:02", "b") == "20240216000002Bh.fits.fz"


def test_synthetic_disk_is_dataset_like():
    img = synthetic_disk(rng=3)
    assert img.dtype == np.uint8 and img.shape == (1024, 1024)
    assert fit_disk(img) == pytest.approx((512.0, 512.0, 450.0), abs=0.1)
    assert img[0, 0] == 0
    assert 175 <= np.median(img[img > 0]) <= 205
