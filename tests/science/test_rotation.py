"""Persistence and zero baselines (service.science.rotation)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.time import Time
from scipy import ndimage

from service.science.metrics import DiskGeometry, score
from service.science.rotation import rotate_to, synodic_rate_deg_day, zero_baseline

N = 1024
GEOM = DiskGeometry((512.0, 512.0), 450.0)
T0 = Time("2014-03-20T00:00:54")
T1 = Time("2014-03-21T00:00:54")  # one day later


def blob(x: float, y: float, peak: float = 150.0, sigma: float = 3.0) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N]
    return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


def centroid(image: np.ndarray) -> tuple[float, float]:
    w = np.clip(np.nan_to_num(image), 0, None)
    w[w < 0.2 * w.max()] = 0
    cy, cx = ndimage.center_of_mass(w)
    return cx, cy


def test_rate_matches_sunpy_howard_synodic():
    import astropy.units as u
    from sunpy.sun.models import differential_rotation

    lat = np.deg2rad([0.0, 15.0, 30.0, 60.0])
    expected = differential_rotation(1 * u.day, lat * u.rad, frame_time="synodic").to_value(u.deg)
    assert synodic_rate_deg_day(lat) == pytest.approx(expected, abs=1e-6)
    assert synodic_rate_deg_day(np.array([0.0]))[0] == pytest.approx(13.34, abs=0.01)


def test_zero_days_is_identity_on_disk():
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.normal(0, 50, (N, N)), 2)
    out = rotate_to(field, T0, T0, GEOM)
    on = np.isfinite(out)
    assert on.sum() == pytest.approx(np.pi * 450**2, rel=1e-3)
    np.testing.assert_allclose(out[on], field[on], atol=1e-3)


def test_feature_at_disk_centre_moves_west_by_one_day_of_rotation():
    from sunpy.coordinates import sun

    out = rotate_to(blob(512, 512), T0, T1, GEOM, mu_correct=False)
    # Hand projection (orthographic, row 0 = south): the blob sits at latitude B0(T0),
    # longitude 0; a day later at longitude rate(B0) * 1 day, seen with B0(T1).
    b0, b1 = sun.B0(T0).rad, sun.B0(T1).rad
    dlon = np.deg2rad(synodic_rate_deg_day(np.array([b0]))[0])
    x = np.cos(b0) * np.sin(dlon)
    y = np.sin(b0) * np.cos(b1) - np.cos(b0) * np.cos(dlon) * np.sin(b1)
    cx, cy = centroid(out)
    assert cx - 512 == pytest.approx(450 * x, abs=0.5)  # ~ +103 px: 13.3 deg west
    assert cy - 512 == pytest.approx(450 * y, abs=0.5)
    assert 100 < cx - 512 < 107


def test_rotated_in_east_limb_is_zero_and_off_disk_nan():
    out = rotate_to(np.full((N, N), 100.0), T0, T1, GEOM, mu_correct=False)
    assert out[512, int(512 - 0.995 * 450)] == 0.0  # came from the far side
    assert out[512, int(512 - 0.9 * 450)] == pytest.approx(100.0)
    assert out[512, int(512 + 0.995 * 450)] == pytest.approx(100.0)
    assert np.isnan(out[0, 0]) and np.isnan(out[512, 1000])


def test_mu_correction_weakens_a_feature_moving_to_the_limb():
    # Feature at 60 deg west (mu 0.5) moves to ~73 deg (mu ~0.29): B_los scales by ~0.58.
    x0 = 512 + 450 * np.sin(np.deg2rad(60))
    plain = rotate_to(blob(x0, 512, sigma=6), T0, T1, GEOM, mu_correct=False)
    corrected = rotate_to(blob(x0, 512, sigma=6), T0, T1, GEOM)
    ratio = np.nansum(corrected) / np.nansum(plain)
    assert 0.5 < ratio < 0.65


def test_zero_baseline():
    t = np.array([[1.0, np.nan], [-3.0, 2.0]])
    z = zero_baseline(t)
    assert z.dtype == np.float32 and np.isnan(z[0, 1])
    assert np.all(z[np.isfinite(t)] == 0)


def test_persistence_on_real_consecutive_days(data_dir):
    """Rotating day d to d+1 beats not rotating, and only with row 0 = south (FITS order)."""
    from service.science.dataset import read_hmi_gauss, read_hmi_u8

    prev_path = data_dir / "val" / "2014-03-19T00_00_54_hmi.webp"
    next_path = data_dir / "val" / "2014-03-20T00_00_54_hmi.webp"
    assert prev_path.is_file() and next_path.is_file()

    def load(path):
        on = ndimage.binary_fill_holes(read_hmi_u8(path) != 0)
        return np.where(on, read_hmi_gauss(path), np.nan), on

    prev, _ = load(prev_path)
    truth, on = load(next_path)
    t0, t1 = Time("2014-03-19T00:00:54"), Time("2014-03-20T00:00:54")
    rotated = rotate_to(prev, t0, t1, GEOM)
    flipped = rotate_to(prev, t0, t1, GEOM, row0_north=True)
    r_rot = score(rotated, truth, on, GEOM)["r_bin8"]
    r_flip = score(flipped, truth, on, GEOM)["r_bin8"]
    r_raw = score(prev, truth, on, GEOM)["r_bin8"]
    assert r_rot > 0.5 > r_flip  # B0 = -7 deg: the wrong north puts features ~50 px off
    assert r_raw < 0.2
