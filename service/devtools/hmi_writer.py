"""HMI files made from model-frame magnetograms (the dataset's ``*_hmi.webp``), for stand-ins and tests.

Level 1 as JSOC serves ``hmi.M_720s`` and ``hmi.M_720s_nrt``: the image rotated by
``CROTA2`` (about 180: solar north down), ``CDELT`` 0.504"/px at 4096 px (coarser in
proportion for a smaller ``naxis``: the same sky on fewer pixels), the disk centre a
few pixels off the image centre, NaN (``BLANK``) beyond the limb, stored as 32-bit
integers with ``BSCALE`` 0.1 in a RICE-compressed extension. The raw segment carries
no WCS (JSOC gives the keywords in the keyword query); an exported file carries them
in its header, as ``jsoc_fetch`` with protocol ``fits`` writes it. Level 1.5: a map
with ``CROTA2`` 0 at any size.

The model frame is mapped onto the level-1 sky by its disk (radius
``MODEL_RADIUS_PX`` = ``RSUN_OBS``), bilinearly; the level-1 pixel -> sky mapping is
the FITS ``CROTA2`` convention written out here by hand, independently of the readers
(which go through astropy's WCS), so a round trip tests both.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy import ndimage

from service.science.preprocess import MODEL_CENTER, MODEL_RADIUS_PX, MODEL_SIZE
from service.sources.magnetograms.files import quiet_leap_seconds

__all__ = [
    "HMI_CDELT_4096",
    "Level1Geometry",
    "exported_fits_bytes",
    "level1_geometry",
    "level1_image",
    "level1_keywords",
    "level15_fits_bytes",
    "raw_segment_bytes",
    "t_rec_slot",
]

HMI_CDELT_4096 = 0.504297  # arcsec / px of HMI level 1
HMI_RSUN_REF_M = 6.96e8  # HMI's RSUN_REF
BSCALE = 0.1  # Gauss per stored integer
BLANK = -(2**31)
# T_REC of the 720 s series: slots every 720 s from 1993.01.01_00:00:00_TAI.
T_REC_EPOCH_TAI = datetime(1993, 1, 1)
T_REC_STEP = timedelta(seconds=720)
_ROWS_PER_BLOCK = 256


def tai_naive(t: datetime) -> datetime:
    """An aware UTC time as a naive TAI datetime."""
    from astropy.time import Time

    with quiet_leap_seconds():
        return Time(t.astimezone(UTC).replace(tzinfo=None), scale="utc").tai.to_datetime()


def utc_aware(tai: datetime) -> datetime:
    """A naive TAI datetime as an aware UTC time."""
    from astropy.time import Time

    with quiet_leap_seconds():
        return Time(tai, scale="tai").utc.to_datetime().replace(tzinfo=UTC)


def jsoc_tai(tai: datetime, decimals: int = 0) -> str:
    """``2014.03.19_00:00:00_TAI`` (or ``..._00:00:00.00_TAI`` with 2 decimals)."""
    text = tai.strftime("%Y.%m.%d_%H:%M:%S")
    if decimals:
        text += f"{tai.microsecond / 1e6:.{decimals}f}"[1:]
    return text + "_TAI"


def t_rec_slot(t: datetime) -> datetime:
    """The 720 s slot (naive TAI) nearest an aware UTC time: the record's ``T_REC``."""
    tai = tai_naive(t)
    n = round((tai - T_REC_EPOCH_TAI) / T_REC_STEP)
    return T_REC_EPOCH_TAI + n * T_REC_STEP


@dataclass(frozen=True)
class Level1Geometry:
    """Where the Sun is on a level-1 image and who saw it (SDO, taken at Earth)."""

    naxis: int
    cdelt: float  # arcsec / px
    crpix1: float  # 1-based disk centre
    crpix2: float
    crota2: float  # deg
    rsun_obs: float  # arcsec
    dsun_obs: float  # m
    crln_obs: float  # deg
    crlt_obs: float  # deg


def level1_geometry(obs_time: datetime, naxis: int = 4096, seed: int = 0) -> Level1Geometry:
    """A plausible level-1 geometry for ``obs_time``: SDO at Earth's distance and B0/L0,
    the disk a few pixels off centre and ``CROTA2`` within 0.1 deg of 180 (per ``seed``)."""
    from astropy.time import Time
    from sunpy.coordinates import get_earth, sun

    t = Time(obs_time.astimezone(UTC).replace(tzinfo=None), scale="utc")
    rng = np.random.default_rng(seed)
    factor = 4096 / naxis
    dsun = float(get_earth(t).radius.to_value("m"))
    off1, off2 = rng.uniform(-3.0, 3.0, size=2) / factor
    return Level1Geometry(
        naxis=naxis, cdelt=HMI_CDELT_4096 * factor,
        crpix1=(naxis + 1) / 2 + float(off1), crpix2=(naxis + 1) / 2 + float(off2),
        crota2=180.0 + float(rng.uniform(-0.1, 0.1)),
        rsun_obs=math.degrees(math.asin(HMI_RSUN_REF_M / dsun)) * 3600.0, dsun_obs=dsun,
        crln_obs=float(sun.L0(t).to_value("deg")), crlt_obs=float(sun.B0(t).to_value("deg")),
    )


def level1_image(gauss_model: np.ndarray, geom: Level1Geometry) -> np.ndarray:
    """The model-frame field on the level-1 grid of ``geom``: float32 Gauss, NaN beyond the limb."""
    src = np.where(np.isfinite(gauss_model), gauss_model, 0.0).astype(np.float32)
    theta = math.radians(geom.crota2)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    model_scale = geom.rsun_obs / MODEL_RADIUS_PX  # arcsec per model pixel
    n = geom.naxis
    out = np.empty((n, n), dtype=np.float32)
    dx = (np.arange(n, dtype=np.float64) - (geom.crpix1 - 1.0))[None, :]
    for start in range(0, n, _ROWS_PER_BLOCK):
        dy = (np.arange(start, min(start + _ROWS_PER_BLOCK, n), dtype=np.float64) - (geom.crpix2 - 1.0))[:, None]
        # FITS CROTA2: (X, Y) = CDELT * R(theta) (dx, dy), X solar west, Y solar north.
        x = geom.cdelt * (cos_t * dx - sin_t * dy)
        y = geom.cdelt * (sin_t * dx + cos_t * dy)
        cols = MODEL_CENTER[0] + x / model_scale
        rows = MODEL_CENTER[1] + y / model_scale
        block = ndimage.map_coordinates(src, [rows, cols], order=1, mode="constant", cval=0.0, prefilter=False)
        block[np.hypot(x, y) > geom.rsun_obs] = np.nan
        out[start:start + block.shape[0]] = block
    return out


def level1_keywords(geom: Level1Geometry, t_rec: datetime, quality: int = 0) -> dict[str, Any]:
    """The keyword record of a level-1 magnetogram (values typed; the stand-in renders JSOC's strings).

    ``t_rec`` is the naive TAI slot; ``T_OBS`` is taken at the slot.
    """
    t_obs_utc = utc_aware(t_rec)
    return {
        "T_REC": jsoc_tai(t_rec), "T_OBS": jsoc_tai(t_rec, 2),
        "DATE__OBS": t_obs_utc.strftime("%Y-%m-%dT%H:%M:%S.00Z"),
        "QUALITY": quality, "TELESCOP": "SDO/HMI", "INSTRUME": "HMI_FRONT2",
        "CONTENT": "MAGNETOGRAM", "BUNIT": "Mx/cm^2",
        "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
        "CDELT1": geom.cdelt, "CDELT2": geom.cdelt, "CRPIX1": geom.crpix1, "CRPIX2": geom.crpix2,
        "CRVAL1": 0.0, "CRVAL2": 0.0, "CROTA2": geom.crota2,
        "RSUN_OBS": geom.rsun_obs, "RSUN_REF": HMI_RSUN_REF_M, "DSUN_OBS": geom.dsun_obs,
        "CRLN_OBS": geom.crln_obs, "CRLT_OBS": geom.crlt_obs,
    }


def _compressed(image: np.ndarray, header: dict[str, Any]) -> bytes:
    from astropy.io import fits

    stored = np.where(np.isfinite(image), np.rint(image / BSCALE), BLANK).astype(np.int32)
    hdu = fits.CompImageHDU(stored, compression_type="RICE_1")
    for key, value in header.items():
        hdu.header[key.replace("__", "-")] = value
    # The integers are the stored values: declare the scaling after the data are set.
    hdu.header["BLANK"] = BLANK
    hdu.header["BZERO"] = 0.0
    hdu.header["BSCALE"] = BSCALE
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


def raw_segment_bytes(image: np.ndarray) -> bytes:
    """The raw ``magnetogram`` segment as JSOC stores it: no keywords, no WCS."""
    return _compressed(image, {})


def exported_fits_bytes(image: np.ndarray, keywords: dict[str, Any]) -> bytes:
    """A level-1 file as JSOC exports it (protocol ``fits``): the keywords in the image header."""
    return _compressed(image, keywords)


def level15_fits_bytes(gauss_model: np.ndarray, obs_time: datetime, naxis: int = 1024,
                       bunit: str = "Mx/cm^2") -> bytes:
    """A level-1.5 map of a model-frame field: north up (``CROTA2`` 0), ``naxis`` square, float32."""
    from astropy.io import fits
    from astropy.time import Time
    from sunpy.coordinates import get_earth, sun

    t = Time(obs_time.astimezone(UTC).replace(tzinfo=None), scale="utc")
    dsun = float(get_earth(t).radius.to_value("m"))
    rsun = math.degrees(math.asin(HMI_RSUN_REF_M / dsun)) * 3600.0
    f = MODEL_SIZE / naxis  # model pixels per map pixel
    centre = MODEL_CENTER[0] / f, MODEL_CENTER[1] / f
    idx = np.arange(naxis, dtype=np.float64)
    rows, cols = np.meshgrid(MODEL_CENTER[1] + (idx - centre[1]) * f, MODEL_CENTER[0] + (idx - centre[0]) * f,
                             indexing="ij")
    src = np.where(np.isfinite(gauss_model), gauss_model, 0.0).astype(np.float32)
    if f > 1:  # shrinking: smooth first, as the science core does
        src = ndimage.gaussian_filter(src, sigma=(f - 1.0) / 2.0, mode="nearest")
    image = ndimage.map_coordinates(src, [rows, cols], order=1, mode="constant", cval=0.0, prefilter=False)
    image[np.hypot(rows - MODEL_CENTER[1], cols - MODEL_CENTER[0]) > MODEL_RADIUS_PX] = np.nan
    scale = rsun / MODEL_RADIUS_PX * f
    header = fits.Header()
    for key, value in {
        "TELESCOP": "SDO/HMI", "INSTRUME": "HMI_FRONT2", "CONTENT": "MAGNETOGRAM", "BUNIT": bunit,
        "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
        "CDELT1": scale, "CDELT2": scale, "CRPIX1": centre[0] + 1.0, "CRPIX2": centre[1] + 1.0,
        "CRVAL1": 0.0, "CRVAL2": 0.0, "CROTA2": 0.0, "DATE-OBS": t.isot, "QUALITY": 0,
        "RSUN_OBS": rsun, "RSUN_REF": HMI_RSUN_REF_M, "DSUN_OBS": dsun,
        "HGLN_OBS": 0.0, "HGLT_OBS": float(sun.B0(t).to_value("deg")),
    }.items():
        header[key] = value
    buf = io.BytesIO()
    fits.PrimaryHDU(image.astype(np.float32), header).writeto(buf)
    return buf.getvalue()

