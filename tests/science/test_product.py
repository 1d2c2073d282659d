"""Product FITS read back by sunpy as a helioprojective map; PNG quick-look."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from service.science.preprocess import ModelGeometry
from service.science.product import write_product_fits, write_quicklook_png

LONG_NAME = "20140523000034Bh" + "_replayed_from_a_very_long_folder_name" * 3 + ".fits.fz"


@pytest.fixture
def geometry() -> ModelGeometry:
    return ModelGeometry.for_time(Time("2014-05-23T00:00:34", scale="utc"))


@pytest.fixture
def gauss(geometry: ModelGeometry) -> np.ndarray:
    """A field of +150 G in the northern half of the disk, -50 G in the south (FITS rows)."""
    data = np.where(np.arange(1024)[:, None] > 512, 150.0, -50.0) * np.ones((1, 1024))
    data = data.astype(np.float32)
    data[~geometry.mask()] = np.nan
    return data


@pytest.fixture
def provenance() -> dict[str, str]:
    return {
        "input_file": LONG_NAME,
        "input_sha256": hashlib.sha256(b"frame").hexdigest(),
        "site": "BB",
        "model_version": "v7",
        "model_sha256": hashlib.sha256(b"model").hexdigest(),
        "preprocess_version": "1",
        "software_version": "0.1.0",
    }


@pytest.fixture
def product(tmp_path: Path, gauss, geometry, provenance) -> Path:
    return write_product_fits(tmp_path / "p.fits", gauss, geometry, provenance)


def test_sunpy_reads_a_helioprojective_map(product: Path, geometry: ModelGeometry) -> None:
    import sunpy.map
    from sunpy.coordinates import frames

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smap = sunpy.map.Map(product)
    assert isinstance(smap.coordinate_frame, frames.Helioprojective)
    assert smap.scale.axis1.to_value(u.arcsec / u.pix) == pytest.approx(geometry.arcsec_per_px)
    assert smap.scale.axis2.to_value(u.arcsec / u.pix) == pytest.approx(geometry.arcsec_per_px)
    # reference pixel (0-based) on the disk centre, Sun centre at (0, 0)
    assert smap.reference_pixel.x.to_value(u.pix) == pytest.approx(512.0)
    assert smap.reference_pixel.y.to_value(u.pix) == pytest.approx(512.0)
    assert smap.rotation_matrix == pytest.approx(np.eye(2))
    assert abs((smap.date - geometry.obs_time).to_value(u.s)) < 1e-3
    observer = smap.observer_coordinate
    assert observer.radius.to_value(u.m) == pytest.approx(geometry.dsun_m)
    assert observer.lat.to_value(u.deg) == pytest.approx(geometry.hglt_deg)
    assert observer.lon.to_value(u.deg) == pytest.approx(geometry.hgln_deg)
    assert smap.rsun_obs.to_value(u.arcsec) == pytest.approx(geometry.rsun_arcsec)
    assert smap.unit == u.G


def test_north_is_up_in_world_coordinates(product: Path) -> None:
    import sunpy.map

    smap = sunpy.map.Map(product)
    north = smap.pixel_to_world(512 * u.pix, (512 + 225) * u.pix)
    assert north.Ty.to_value(u.arcsec) > 400
    # the +150 G half of the model array (rows above 512, north) is the positive-Ty half
    assert smap.data[512 + 225, 512] == pytest.approx(150.0)


def test_data_gauss_nan_off_disk(product: Path, gauss: np.ndarray) -> None:
    with fits.open(product) as hdul:
        data = hdul[0].data
        header = hdul[0].header
    assert data.dtype == np.dtype(">f4") and data.shape == (1024, 1024)
    assert np.isnan(data[0, 0]) and np.isfinite(data[512, 512])
    np.testing.assert_array_equal(np.isnan(data), np.isnan(gauss))
    assert header["BUNIT"] == "Gauss" and header["CROTA2"] == 0.0
    for key in ("DATE-OBS", "T_OBS", "RSUN_OBS", "DSUN_OBS", "HGLN_OBS", "HGLT_OBS", "TELESCOP", "INSTRUME"):
        assert key in header
    assert header["T_OBS"].endswith("_TAI")


def test_provenance_keys(product: Path, provenance: dict[str, str]) -> None:
    with fits.open(product) as hdul:
        header = hdul[0].header
    assert header["INFILE"] == LONG_NAME  # long value on CONTINUE cards
    assert header["INSHA256"] == provenance["input_sha256"]
    assert header["MODELSHA"] == provenance["model_sha256"]
    assert (header["SITE"], header["MODELVER"], header["PREPVER"], header["SWVER"]) == ("BB", "v7", "1", "0.1.0")
    assert Time(header["DATE"]) > Time("2020-01-01")
    assert header.comments["SITE"]


def test_unknown_provenance_key_is_an_error(tmp_path: Path, gauss, geometry) -> None:
    with pytest.raises(ValueError, match="unknown provenance"):
        write_product_fits(tmp_path / "p.fits", gauss, geometry, {"colour": "red"})


def test_never_overwrites(product: Path, gauss, geometry, provenance) -> None:
    with pytest.raises(FileExistsError):
        write_product_fits(product, gauss, geometry, provenance)


def test_quicklook_png(tmp_path: Path, gauss: np.ndarray) -> None:
    from PIL import Image

    path = write_quicklook_png(tmp_path / "q.png", gauss, title="synmag test")
    with Image.open(path) as im:
        width, height = im.size
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert 800 <= width <= 1200 and 700 <= height <= 1200
    # diverging colours: red (positive, north = top half) and blue (negative) both present
    reddish = (pixels[..., 0] - pixels[..., 2]) > 60
    bluish = (pixels[..., 2] - pixels[..., 0]) > 20
    assert reddish[: height // 2].sum() > 1000 and bluish[height // 2 :].sum() > 1000
    assert io.BytesIO(path.read_bytes()).read(8) == b"\x89PNG\r\n\x1a\n"


def test_uncertainty_layers_are_sunpy_maps_on_the_same_grid(tmp_path: Path, gauss, geometry, provenance) -> None:
    import sunpy.map

    from service.science.product import product_fits_bytes

    sigma = np.where(np.isfinite(gauss), 12.5, np.nan).astype(np.float32)
    confidence = np.where(np.isfinite(gauss), 0.8, np.nan).astype(np.float32)
    path = tmp_path / "layers.fits"
    path.write_bytes(product_fits_bytes(gauss, geometry, provenance, sigma=sigma, confidence=confidence))
    with fits.open(path, checksum=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SIGMA", "CONFIDENCE"]
        assert hdul["SIGMA"].header["BUNIT"] == "Gauss"
        np.testing.assert_array_equal(hdul[0].data, gauss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sunpy notes the missing WAVELNTH and the like
        field, sig, conf = sunpy.map.Map(path)
    assert sig.reference_pixel == field.reference_pixel and sig.scale == field.scale
    assert conf.date == field.date and np.nanmax(conf.data) == pytest.approx(0.8)
    assert np.isnan(conf.data[0, 0])  # off the disk


def test_layers_come_together(gauss, geometry, provenance) -> None:
    from service.science.product import product_fits_bytes

    with pytest.raises(ValueError, match="together"):
        product_fits_bytes(gauss, geometry, provenance, sigma=np.zeros_like(gauss))
