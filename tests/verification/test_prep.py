"""``to_model_frame``: any real magnetogram into the model frame at its own time, through its WCS."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest

from service.devtools.hmi_writer import (
    exported_fits_bytes,
    level1_geometry,
    level1_image,
    level1_keywords,
    level15_fits_bytes,
    t_rec_slot,
)
from service.sources.magnetograms.base import Magnetogram, MagnetogramRejected
from service.sources.magnetograms.files import read_fits
from service.verification.prep import to_model_frame
from tests.hmi_days import T0, bipole_field, blob_center


def level1(field: np.ndarray, naxis: int, seed: int = 3) -> Magnetogram:
    geom = level1_geometry(T0, naxis=naxis, seed=seed)
    return read_fits(exported_fits_bytes(level1_image(field, geom), level1_keywords(geom, t_rec_slot(T0))), "l1.fits")


@pytest.mark.parametrize("naxis", [1024, 2048])
def test_level1_upside_down_lands_north_up_where_the_field_was(naxis: int) -> None:
    field = bipole_field(2)
    gauss, geometry = to_model_frame(level1(field, naxis))
    for sign in (1.0, -1.0):
        got, want = blob_center(gauss, sign), blob_center(field, sign)
        assert np.hypot(got[0] - want[0], got[1] - want[1]) < 0.3  # model pixels
    assert geometry.center == (512.0, 512.0) and geometry.radius_px == 450.0


def test_a_level15_map_of_another_size_lands_on_the_same_pixels() -> None:
    field = bipole_field(4)
    gauss, _ = to_model_frame(read_fits(level15_fits_bytes(field, T0, naxis=1536), "l15.fits"))
    got, want = blob_center(gauss), blob_center(field)
    assert np.hypot(got[0] - want[0], got[1] - want[1]) < 0.3


def test_the_field_keeps_its_values_unclipped_and_nan_off_the_disk() -> None:
    field = np.where(bipole_field(0) > 0, 1500.0, bipole_field(0)).astype(np.float32)  # a 1.5 kG spot
    gauss, geometry = to_model_frame(level1(field, 1024))
    assert np.nanmax(gauss) > 1000.0
    mask = geometry.mask()
    assert np.isnan(gauss[~mask]).all() and np.isfinite(gauss[mask]).mean() > 0.999


def test_the_rim_is_not_darkened_by_the_limb() -> None:
    """Normalised convolution: a uniform 100 G disk stays 100 G out to the last on-disk pixels."""
    field = np.full((1024, 1024), 100.0, np.float32)
    gauss, geometry = to_model_frame(level1(field, 2048))
    yy, xx = np.mgrid[0:1024, 0:1024]
    rim = geometry.mask() & (np.hypot(xx - 512.0, yy - 512.0) > 447.0) & np.isfinite(gauss)
    assert rim.sum() > 1000 and np.abs(gauss[rim] - 100.0).max() < 1.0


def test_a_dataset_map_is_taken_as_is_with_its_time() -> None:
    field = bipole_field(1)
    m = Magnetogram(field, T0, "0" * 64, "day.webp", in_model_frame=True)
    gauss, geometry = to_model_frame(m)
    mask = geometry.mask()
    assert np.array_equal(gauss[mask], field[mask]) and np.isnan(gauss[~mask]).all()
    assert abs(geometry.obs_time.to_datetime(timezone=T0.tzinfo) - T0) < timedelta(milliseconds=1)


def test_results_are_shared_read_only() -> None:
    m = level1(bipole_field(3), 1024, seed=11)
    first, _ = to_model_frame(m)
    again, _ = to_model_frame(m)
    assert again is first
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 1.0


def test_a_mirrored_image_is_refused() -> None:
    from astropy.io import fits

    data = level15_fits_bytes(bipole_field(0), T0, naxis=512)
    hdul = fits.open(io.BytesIO(data))
    hdul[0].header["CDELT1"] = -hdul[0].header["CDELT1"]  # east-west mirrored
    buf = io.BytesIO()
    hdul.writeto(buf)
    with pytest.raises(MagnetogramRejected, match="bad_wcs: .*mirrored"):
        read_fits(buf.getvalue(), "mirrored.fits")
