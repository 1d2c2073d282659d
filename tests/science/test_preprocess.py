"""Unit tests of the versioned transform: units, masks, geometry, intensity map, orientation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from service.errors import FrameRejected
from service.science import preprocess as pp
from service.science.dataset import fit_disk


def test_version_and_frame_constants() -> None:
    assert isinstance(pp.PREPROCESS_VERSION, str) and pp.PREPROCESS_VERSION
    assert pp.MODEL_SIZE == 1024
    assert pp.MODEL_CENTER == (512.0, 512.0)
    assert pp.MODEL_RADIUS_PX == 450.0
    assert pp.GAUSS_SCALE == 200.0


def test_halpha_units_round_trip() -> None:
    v = np.array([0, 127.5, 255], dtype=np.float32)
    x = pp.halpha_to_model(v)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(pp.model_to_halpha(x), v)


def test_gauss_units_round_trip_and_clip() -> None:
    b = np.array([-500.0, -200.0, 0.0, 37.5, 200.0, 900.0, np.nan], dtype=np.float32)
    y = pp.gauss_to_model(b)
    np.testing.assert_allclose(y[:-1], [-1.0, -1.0, 0.0, 0.1875, 1.0, 1.0])
    assert np.isnan(y[-1])
    np.testing.assert_allclose(pp.model_to_gauss(y)[:-1], np.clip(b[:-1], -200, 200))


def test_model_mask_is_the_training_disk() -> None:
    mask = pp.model_disk_mask()
    assert mask.shape == (1024, 1024)
    assert mask[512, 512] and mask[512, 512 + 450] and not mask[512, 512 + 451]
    assert abs(mask.sum() / (np.pi * 450.0**2) - 1) < 1e-3


def _geometry() -> pp.ModelGeometry:
    return pp.ModelGeometry.for_time(Time("2014-05-23T00:00:34", scale="utc"))


def test_geometry_dict_round_trip_is_json() -> None:
    geometry = _geometry()
    data = json.loads(json.dumps(geometry.to_dict()))
    back = pp.ModelGeometry.from_dict(data)
    assert back.center == geometry.center and back.radius_px == geometry.radius_px
    assert abs((back.obs_time - geometry.obs_time).to_value("s")) < 1e-3
    assert back.arcsec_per_px == pytest.approx(geometry.rsun_arcsec / 450.0)


def test_geometry_follows_earth_distance() -> None:
    jan = pp.ModelGeometry.for_time(Time("2014-01-03T00:00:00"))
    jul = pp.ModelGeometry.for_time(Time("2014-07-04T00:00:00"))
    assert jan.dsun_m < jul.dsun_m
    assert jan.arcsec_per_px > jul.arcsec_per_px  # fixed radius in pixels, bigger Sun in January
    assert 943 < jul.rsun_arcsec < jan.rsun_arcsec < 977


def test_postprocess_gauss_nan_off_disk() -> None:
    geometry = _geometry()
    y = np.full((1024, 1024), 0.5, dtype=np.float32)
    gauss = pp.postprocess(y, geometry)
    assert gauss.dtype == np.float32
    mask = geometry.mask()
    assert np.all(gauss[mask] == 100.0)
    assert np.all(np.isnan(gauss[~mask]))


def test_postprocess_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        pp.postprocess(np.zeros((512, 512), np.float32), _geometry())


def _fits_disk(
    center: tuple[float, float], radius: float, spot: tuple[float, float] = (0.0, 0.5), size: int = 2048
) -> np.ndarray:
    """A flat bright disk in FITS row order with a dark spot at ``spot`` (x, y in R; default north)."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    img = np.where(np.hypot(x - center[0], y - center[1]) <= radius, 3000.0, 100.0)
    sx, sy = center[0] + spot[0] * radius, center[1] + spot[1] * radius
    spot = np.hypot(x - sx, y - sy) < 0.05 * radius
    img[spot] = 1000.0
    return img.astype(np.float32)


def test_resample_puts_disk_on_model_frame_north_up() -> None:
    center, radius = (1031.4, 1020.4), 877.7
    out = pp.resample_to_model(_fits_disk(center, radius), center, radius)
    cx, cy, r = fit_disk(out, threshold=1500.0)
    assert abs(cx - 512.0) < 0.3 and abs(cy - 512.0) < 0.3
    assert abs(r - 450.5) < 0.5  # fit_disk measures the outer pixel edge
    # the spot north of the centre stays north: higher rows (FITS row order, row 0 = south)
    assert out[512 + 225, 512] < 1500 and out[512 - 225, 512] > 2500


def test_resample_undoes_header_rotation() -> None:
    # CROTA2 = 90: world = R(90) pixel, so solar north lies along pixel +x.
    center, radius = (1023.0, 1023.0), 900.0
    img = _fits_disk(center, radius, spot=(0.5, 0.0))  # spot at +x of the centre
    assert img[1023, 1023 + 450] < 1500
    out = pp.resample_to_model(img, center, radius, rotation_deg=90.0)
    assert out[512 + 225, 512] < 1500 and out[512 - 225, 512] > 2500


def test_header_rotation_from_crota_and_pc() -> None:
    assert pp.header_rotation_deg(fits.Header()) == 0.0
    assert pp.header_rotation_deg(fits.Header({"CROTA2": 12.5})) == 12.5
    t = np.radians(-7.0)
    pc = fits.Header({"PC1_1": np.cos(t), "PC1_2": -np.sin(t), "PC2_1": np.sin(t), "PC2_2": np.cos(t)})
    assert pp.header_rotation_deg(pc) == pytest.approx(-7.0)


def test_intensity_map_ignores_gain_and_sky() -> None:
    rng = np.random.default_rng(0)
    mask = pp.model_disk_mask()
    base = rng.normal(2900.0, 250.0, (1024, 1024)).astype(np.float32)
    a, _ = pp.match_intensity(base, mask)
    b, stats = pp.match_intensity(base * 1.7 + 400.0, mask)
    np.testing.assert_allclose(a, b, atol=1e-2)
    assert np.median(b[mask]) == pytest.approx(193.0, abs=0.05)
    assert np.percentile(b[mask], 5) == pytest.approx(147.0, abs=0.05)
    assert np.all(b[~mask] == 0) and b.max() <= 255 and b.min() >= 0
    assert stats["gain"] > 0


def test_intensity_map_keeps_the_day_contrast_shape() -> None:
    """A linear map: the ranking and relative spacing of on-disk values survive."""
    mask = pp.model_disk_mask()
    ramp = np.linspace(2000, 4000, 1024 * 1024, dtype=np.float32).reshape(1024, 1024)
    out, _ = pp.match_intensity(ramp, mask)
    r = np.corrcoef(out[mask & (out > 0) & (out < 255)], ramp[mask & (out > 0) & (out < 255)])[0, 1]
    assert r > 0.999999


def test_flat_disk_is_rejected() -> None:
    with pytest.raises(FrameRejected) as info:
        pp.match_intensity(np.full((1024, 1024), 5.0, np.float32), pp.model_disk_mask())
    assert info.value.reason == "flat_disk"


@pytest.mark.parametrize("generation", ["gongx", "hpln"])
def test_preprocess_synthetic_frame(synthetic_frame_path, generation: str) -> None:
    from service.sources.gong.reader import read_gong

    frame = read_gong(synthetic_frame_path(generation))
    model_input = pp.preprocess(frame)
    image, mask = model_input.image, model_input.mask
    assert image.shape == (1024, 1024) and image.dtype == np.float32
    assert np.all(image[~mask] == -1.0)
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert np.median(pp.model_to_halpha(image)[mask]) == pytest.approx(193.0, abs=1.0)
    geometry = model_input.geometry
    assert geometry.center == pp.MODEL_CENTER and geometry.radius_px == pp.MODEL_RADIUS_PX
    assert geometry.arcsec_per_px == pytest.approx(frame.rsun_arcsec.to_value("arcsec") / 450.0)
    assert abs((geometry.obs_time - frame.obs_time).to_value("s")) < 1e-3
    assert model_input.intensity["gain"] > 0
