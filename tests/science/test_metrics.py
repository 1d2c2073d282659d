"""Metrics against hand-computed values (service.science.metrics)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from service.science.metrics import (
    DiskGeometry,
    fit_disk,
    flux_weights,
    geometry_of,
    ppa,
    r_bin8_split,
    score,
    score_regions,
)

N = 128
GEOM = DiskGeometry((63.5, 63.5), 60.0)


def disk_field(seed: int = 0, n: int = N, geometry: DiskGeometry = GEOM) -> np.ndarray:
    """A smooth random field (G) on a disk, NaN off the disk, never exactly 0 on it."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 3)
    f = 80 * f / f.std()
    f[f == 0] = 1.0
    yy, xx = np.mgrid[:n, :n]
    on = (xx - geometry.center[0]) ** 2 + (yy - geometry.center[1]) ** 2 <= geometry.radius_px**2
    return np.where(on, f, np.nan)


def test_identical_maps_are_perfect():
    t = disk_field()
    s = score(t, t, geometry=GEOM)
    assert s["r"] == 1.0 and s["r_bin8"] == 1.0
    assert s["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert s["psnr"] == math.inf and s["mse"] == 0.0
    assert set(s["ppa"]) == {"0", "5", "10", "20", "30", "40", "50"}
    assert all(v == 1.0 for v in s["ppa"].values())
    assert s["tumf_ratio"] == pytest.approx(1.0) and s["netflux_ratio"] == pytest.approx(1.0)
    assert s["n_pixels"] == int(np.isfinite(t).sum())


def test_negated_map():
    t = disk_field()
    s = score(-t, t, geometry=GEOM)
    assert s["r"] == pytest.approx(-1.0) and s["r_bin8"] == pytest.approx(-1.0)
    assert all(v == 0.0 for v in s["ppa"].values())
    assert s["tumf_ratio"] == pytest.approx(1.0)
    assert s["netflux_ratio"] == pytest.approx(-1.0)


def test_r_bin8_split_separates_polarity_from_magnitude():
    t = disk_field()
    flipped = r_bin8_split(-t, t)  # right field, every polarity wrong
    assert flipped["signed"] == pytest.approx(-1.0) and flipped["own_sign"] == pytest.approx(-1.0)
    assert flipped["unsigned"] == pytest.approx(1.0) and flipped["true_sign"] == pytest.approx(1.0)
    other = disk_field(seed=1)
    blind = r_bin8_split(np.sign(t) * np.abs(other), t)  # right polarity, wrong magnitudes
    assert blind["own_sign"] > 0.99  # (a few 8x8 blocks mix polarities)
    assert blind["unsigned"] < 0.5 and blind["signed"] < blind["own_sign"]
    assert r_bin8_split(t, t)["signed"] == score(t, t, geometry=GEOM)["r_bin8"]


def test_negated_map_ignores_zero_truth_pixels_in_ppa():
    t = disk_field()
    t[60:70, 60:70] = 0.0  # |truth| > 0 is false there: not counted, even at threshold 0
    s = score(-t, t, geometry=GEOM)
    assert s["ppa"]["0"] == 0.0
    assert s["ppa_n"]["0"] == s["n_pixels"] - 100


def test_shift_lowers_r_monotonically():
    t = disk_field(seed=1)
    rs = [score(np.roll(t, k, axis=1), t, np.isfinite(t), GEOM)["r"] for k in (0, 2, 6)]
    assert rs[0] == 1.0 and rs[0] > rs[1] > rs[2]
    assert 0.3 < rs[1] < 0.99


def test_ppa_hand_example():
    truth = np.array([[10.0, -3.0], [0.0, 40.0]])
    pred = np.array([[5.0, 2.0], [-1.0, -7.0]])
    acc, n = ppa(pred.ravel(), truth.ravel())
    # t=0: {10 ok, -3 wrong, 40 wrong} (truth 0 excluded); t=5: {10 ok, 40 wrong};
    # t=10..30: {40 wrong}; t=40, 50: nothing passes (strict >) -> NaN.
    assert acc["0"] == pytest.approx(1 / 3) and n["0"] == 3
    assert acc["5"] == 0.5 and n["5"] == 2
    assert acc["10"] == acc["20"] == acc["30"] == 0.0
    assert math.isnan(acc["40"]) and math.isnan(acc["50"]) and n["40"] == 0


def test_ppa_zero_prediction_is_wrong_sign():
    acc, _ = ppa(np.array([0.0, 0.0]), np.array([10.0, -10.0]))
    assert acc["0"] == 0.0 and acc["5"] == 0.0


def test_score_ppa_on_a_2x2_map():
    truth = np.array([[10.0, -3.0], [0.0, 40.0]])
    pred = np.array([[5.0, 2.0], [-1.0, -7.0]])
    s = score(pred, truth)
    assert s["ppa"]["0"] == pytest.approx(1 / 3) and s["ppa"]["5"] == 0.5
    assert math.isnan(s["r_bin8"]) and s["n_bins8"] == 0


def test_ssim_of_constant_offset_matches_formula():
    truth = np.full((32, 32), 10.0)
    pred = truth + 4.0
    c1 = (0.01 * 400) ** 2  # 16 G^2
    # sigma terms vanish: SSIM = (2 mx my + C1)/(mx^2 + my^2 + C1) * (0 + C2)/(0 + C2)
    expected = (2 * 10 * 14 + c1) / (10**2 + 14**2 + c1)
    assert expected == pytest.approx(296 / 312)
    assert score(pred, truth)["ssim"] == pytest.approx(expected, abs=1e-9)


def test_ssim_is_two_dimensional():
    # Transposing both maps leaves 2-D SSIM unchanged; a 1-D raster SSIM would change.
    t = disk_field(seed=2)
    p = disk_field(seed=3)
    a = score(p, t, geometry=GEOM)["ssim"]
    b = score(p.T, t.T, geometry=GEOM)["ssim"]
    assert a == pytest.approx(b, abs=1e-12) and 0 < a < 1


def test_psnr_of_constant_error_uses_fixed_range():
    t = disk_field(seed=4)
    s = score(t + 20.0, t, geometry=GEOM)
    assert s["mse"] == pytest.approx(400.0)
    assert s["psnr"] == pytest.approx(20 * math.log10(400 / 20))


def test_nan_is_off_disk():
    t = disk_field(seed=5)
    p = t.copy()
    p[50:60, 50:60] = np.nan
    with_nan = score(p, t, geometry=GEOM)
    mask = np.isfinite(p)
    assert with_nan["n_pixels"] == int((mask & np.isfinite(t)).sum())
    assert with_nan == score(np.nan_to_num(p), t, mask, GEOM)


def test_shape_mismatch_is_a_clear_value_error():
    with pytest.raises(ValueError, match="shape mismatch"):
        score(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        score(np.zeros(16), np.zeros(16))
    with pytest.raises(ValueError, match="no on-disk pixels"):
        score(np.full((4, 4), np.nan), np.zeros((4, 4)))


def test_r_bin8_uses_only_blocks_fully_on_disk():
    rng = np.random.default_rng(6)
    t = rng.normal(0, 50, (32, 32))
    mask = np.zeros((32, 32), bool)
    mask[:, :20] = True  # columns 0..19: full blocks in columns 0..15 only -> 4 x 2 blocks
    s = score(t, t, mask)
    assert s["n_bins8"] == 8 and s["r_bin8"] == pytest.approx(1.0)


def test_flux_weights_follow_one_over_mu_squared_and_drop_the_limb():
    g = DiskGeometry((50.0, 50.0), 40.0)
    w = flux_weights((101, 101), g)
    # (x, y) = (50 + 0.8 R, 50): rho = 0.8, mu = 0.6 -> 1 / 0.36 of the centre weight.
    assert w[50, 82] / w[50, 50] == pytest.approx(1 / 0.36)
    assert w[50, 50] == pytest.approx((6.957e10 / 40.0) ** 2)
    assert w[50, 89] == 0.0  # rho = 0.975, mu = 0.22 < 0.3


def test_netflux_ratio_is_nan_for_balanced_truth():
    t = np.zeros((64, 64))
    t[30, 20], t[30, 43] = 50.0, -50.0  # mirror pixels about x = 31.5: equal weights
    mask = np.ones_like(t, dtype=bool)
    g = DiskGeometry((31.5, 31.5), 40.0)
    s = score(t * 0.5, t, mask, g)
    assert math.isnan(s["netflux_ratio"]) and s["netflux_delta_frac"] == 0.0
    assert s["tumf_ratio"] == pytest.approx(0.5)


def test_geometry_objects_with_center_or_center_px():
    a = geometry_of(SimpleNamespace(center=(1.0, 2.0), radius_px=3.0))
    b = geometry_of(SimpleNamespace(center_px=(1.0, 2.0), radius_px=3.0))
    assert a == b == DiskGeometry((1.0, 2.0), 3.0)


def test_fit_disk_recovers_centre_and_radius():
    g = fit_disk(np.isfinite(disk_field()))
    assert g.center == pytest.approx(GEOM.center, abs=0.05)
    assert g.radius_px == pytest.approx(GEOM.radius_px, abs=0.1)


def _bipole_map(sign: float = 1.0) -> np.ndarray:
    t = disk_field(seed=7) * 0.1  # quiet Sun, ~8 G
    yy, xx = np.mgrid[:N, :N]
    for x0, s in ((55, 1.0), (72, -1.0)):
        t += sign * s * 180 * np.exp(-((xx - x0) ** 2 + (yy - 60) ** 2) / (2 * 4.0**2))
    return t


def test_score_regions_on_a_bipole():
    t = _bipole_map()
    same = score_regions(t, t, geometry=GEOM)
    assert same["n_regions"] == 1 and same["ar_r"] == pytest.approx(1.0)
    assert same["region_sign_agreement"] == 1.0 and same["ar_ppa"]["50"] == 1.0
    flipped = score_regions(-t, t, geometry=GEOM)
    assert flipped["ar_r"] == pytest.approx(-1.0) and flipped["ar_ppa"]["0"] == 0.0
    # The bipole's net flux is tiny but not zero; its sign flips with the map.
    assert flipped["region_sign_agreement"] == 0.0


def test_score_regions_without_regions_is_nan():
    t = disk_field(seed=8) * 0.1
    s = score_regions(t, t, geometry=GEOM)
    assert s["n_regions"] == 0 and s["ar_n_pixels"] == 0
    assert math.isnan(s["ar_r"]) and math.isnan(s["region_sign_agreement"])
    assert all(math.isnan(v) for v in s["ar_ppa"].values())


def test_score_with_regions_equals_score_regions():
    t = _bipole_map()
    p = disk_field(seed=9) * 0.2 + t
    both = score(p, t, geometry=GEOM, regions=True)
    alone = score_regions(p, t, geometry=GEOM)
    assert both["n_regions"] == alone["n_regions"] == 1
    for key in ("ar_psnr", "ar_ssim", "ar_r", "region_sign_agreement", "ar_ppa"):
        assert both[key] == alone[key]
    assert both["r"] == score(p, t, geometry=GEOM)["r"]
