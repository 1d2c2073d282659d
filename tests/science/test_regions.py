"""Active-region detection (service.science.regions)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from service.science.regions import bounding_box, detect_regions

N = 512
C, R = 255.5, 225.0


def quiet_disk(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Quiet-Sun-like noise (~10 G, network-sized grains) on a disk; NaN off it."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.normal(0, 1, (N, N)), 1.0)
    f = 10 * f / f.std()
    yy, xx = np.mgrid[:N, :N]
    on = (xx - C) ** 2 + (yy - C) ** 2 <= R**2
    return np.where(on, f, np.nan), on


def add_bipole(field: np.ndarray, x: float, y: float, sep: float = 20, peak: float = 190) -> None:
    yy, xx = np.mgrid[: field.shape[0], : field.shape[1]]
    for dx, s in ((-sep / 2, 1.0), (sep / 2, -1.0)):
        field += s * peak * np.exp(-((xx - x - dx) ** 2 + (yy - y) ** 2) / (2 * 6.0**2))


def test_quiet_sun_has_no_region():
    field, on = quiet_disk()
    assert detect_regions(field, on) == []


def test_finds_a_synthetic_bipole_as_one_region():
    field, on = quiet_disk(1)
    add_bipole(field, 200, 300)
    regions = detect_regions(field, on)
    assert len(regions) == 1
    y0, y1, x0, x1 = regions[0].box
    # Both polarities (x = 190 and 210) inside one merged, padded box.
    assert x0 < 180 and x1 > 220 and y0 < 290 and y1 > 310
    assert regions[0].peak_g > 50 and regions[0].area >= 150


def test_two_separate_bipoles_are_two_regions():
    field, on = quiet_disk(2)
    add_bipole(field, 150, 250)
    add_bipole(field, 350, 300)
    regions = detect_regions(field, on)
    assert len(regions) == 2
    centres = sorted((r.slice_x.start + r.slice_x.stop) / 2 for r in regions)
    assert centres == pytest.approx([150, 350], abs=5)


def test_small_spots_are_ignored():
    field, on = quiet_disk(3)
    yy, xx = np.mgrid[:N, :N]
    field += 150 * np.exp(-((xx - 250) ** 2 + (yy - 250) ** 2) / (2 * 2.0**2))  # a pore
    assert detect_regions(field, on) == []


def test_bounding_box():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert bounding_box(m) == (slice(2, 5), slice(3, 9))
    assert bounding_box(np.zeros((3, 3), bool)) == (slice(0, 3), slice(0, 3))


def test_real_val_day_has_regions(val_pair):
    from service.science.dataset import read_hmi_gauss, read_hmi_u8

    hmi = val_pair[1]
    on = ndimage.binary_fill_holes(read_hmi_u8(hmi) != 0)  # 0 is off-disk (and -200 G)
    field = np.where(on, read_hmi_gauss(hmi), np.nan)
    regions = detect_regions(field, on)
    # 2014 was near cycle-24 maximum: the val days have 1..14 regions (mean 7.2).
    assert 1 <= len(regions) <= 20
    for r in regions:
        assert on[r.slice_y, r.slice_x].mean() > 0.5  # boxes lie on the disk
        assert np.nanmax(np.abs(field[r.slice_y, r.slice_x])) > 100
