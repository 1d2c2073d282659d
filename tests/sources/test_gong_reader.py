"""read_gong: geometry, time, site and metadata of both header generations; bad input."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from service.errors import FrameRejected
from service.sources.gong.reader import read_gong
from tests.frames import write_raw_frame


def _sample_frame(tmp_path: Path, header: fits.Header, data: np.ndarray | None = None) -> Path:
    """The real sample header on flat int16 pixels, NSO layout and file name."""
    h = header.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "CHECKSUM", "DATASUM"):
        h.remove(key, ignore_missing=True)
    pixels = np.full((2048, 2048), 3000, np.int16) if data is None else data
    return write_raw_frame(tmp_path / "20240216000002Bh.fits.fz", pixels, h)


@pytest.mark.parametrize("generation", ["gongx", "hpln"])
def test_reads_geometry_time_site(synthetic_frame_path, generation):
    path = synthetic_frame_path(
        generation, "2014-05-20T00:00:54", "L", center=(1030.0, 1015.5), radius=880.0
    )
    frame = read_gong(path)
    assert frame.generation == generation
    assert frame.center_px == pytest.approx((1030.0, 1015.5))
    assert frame.radius_px == pytest.approx(880.0)
    assert frame.obs_time.isot == "2014-05-20T00:00:54.000"
    assert (frame.source, frame.site) == ("gong", "LE")
    assert frame.filename == "20140520000054Lh.fits.fz"
    assert frame.data.shape == (2048, 2048) and frame.data.dtype == np.float32


def test_real_header_keys_are_one_based(tmp_path, gong_header):
    # FNDLMBXC/YC = 1024.0 (IRAF, 1-based) -> 0-based 1023.0; radius FNDLMBMI/MA = 900.
    frame = read_gong(_sample_frame(tmp_path, gong_header))
    assert frame.center_px == (1023.0, 1023.0)
    assert frame.radius_px == 900.0
    assert frame.obs_time.isot == "2024-02-16T00:00:02.000"
    assert frame.rsun_arcsec == 971.544571353755 * u.arcsec
    assert frame.p_angle.unit == u.deg and frame.p_angle.value == pytest.approx(-17.5284061)
    assert frame.quality["sharpness"] == pytest.approx(0.00844678586376128)
    assert frame.quality["error_code"] == 0


def test_missing_quality_key_is_none(tmp_path, gong_header):
    h = gong_header.copy()
    del h["SHARPNSS"]
    assert read_gong(_sample_frame(tmp_path, h)).quality["sharpness"] is None


def test_observer_matches_sunpy(tmp_path, gong_header):
    from sunpy.map.sources import GONGHalphaMap

    frame = read_gong(_sample_frame(tmp_path, gong_header))
    expected = GONGHalphaMap(frame.data, frame.header).observer_coordinate
    obs = frame.observer()
    assert obs is frame.observer()  # cached
    assert u.allclose(obs.radius, expected.radius, rtol=1e-9)
    assert u.allclose(obs.lat, expected.lat, atol=1e-6 * u.arcsec)
    assert frame.observer_params()["dsun_m"] == pytest.approx(expected.radius.to_value(u.m))


def test_bytes_and_path_agree(synthetic_frame_path):
    path = synthetic_frame_path()
    a, b = read_gong(path), read_gong(path.read_bytes(), filename=path.name)
    assert np.array_equal(a.data, b.data) and a.center_px == b.center_px and a.site == b.site


def _reason(source, filename=None) -> str:
    with pytest.raises(FrameRejected) as info:
        read_gong(source, filename=filename)
    return info.value.reason


def test_not_fits_is_corrupt():
    assert _reason(b"<html>502 Bad Gateway</html>" * 100) == "corrupt_fits"


def test_garbled_data_is_corrupt(synthetic_frame_path):
    raw = bytearray(synthetic_frame_path().read_bytes())
    raw[2880:] = bytes(len(raw) - 2880)  # keep the primary header, zero the rest
    assert _reason(bytes(raw)) == "corrupt_fits"


def test_truncated_at_half(synthetic_frame_path):
    raw = synthetic_frame_path().read_bytes()
    assert _reason(raw[: len(raw) // 2]) == "truncated"


def test_wrong_shape(tmp_path, gong_header):
    assert _reason(_sample_frame(tmp_path, gong_header, np.zeros((1024, 1024), np.int16))) == "wrong_shape"


def test_nan_pixels(tmp_path, gong_header):
    data = np.full((2048, 2048), 3000.0, np.float32)
    data[1000, 1000:1010] = np.nan
    assert _reason(_sample_frame(tmp_path, gong_header, data)) == "nan_pixels"


@pytest.mark.parametrize(
    "overrides",
    [
        {"FNDLMBMI": 5.0},  # radius 5 px
        {"FNDLMBXC": 4000.0},  # centre off the image
        {"DATE-OBS": "yesterday"},
        {"SOLAR-R": 1800.0},
        {"SITENAME": "CT"},  # file name says B (Big Bear)
        {"CTYPE1": "RA---TAN"},
    ],
)
def test_absurd_header(synthetic_frame_path, overrides):
    path = synthetic_frame_path(header_overrides=overrides)
    assert _reason(path) == "absurd_header"


def test_hpln_cdelt_must_match_radius(synthetic_frame_path):
    assert _reason(synthetic_frame_path("hpln", header_overrides={"CDELT1": 2.0})) == "absurd_header"


def test_missing_keys(synthetic_frame_path):
    assert _reason(synthetic_frame_path(header_overrides={"FNDLMBYC": None})) == "missing_keys"


def test_frames_from_real_data_read_alike(real_frame_paths, val_pair):
    from service.science.dataset import pair_time

    a, b = (read_gong(real_frame_paths[g]) for g in ("gongx", "hpln"))
    assert (a.generation, b.generation) == ("gongx", "hpln")
    assert a.obs_time == b.obs_time == pair_time(val_pair[0])
    assert a.center_px == b.center_px and a.radius_px == b.radius_px
