"""Magnetogram files read into :class:`~.base.Magnetogram`: FITS (level 1 and 1.5) and dataset WebP.

Each quirk once, here:

* Time: ``T_OBS`` first (HMI's observation time, the middle of the 720 s, JSOC's
  ``2014.03.19_00:01:07.50_TAI``), else ``DATE-OBS`` (ISO, UTC). JSOC says ``MISSING``
  for a record without data.
* ``QUALITY``: JSOC sends hex strings (``"0x00000000"``); FITS headers carry an int.
  Anything but 0 is unusable; a header without the key is taken as usable (level-1.5
  maps written by other tools drop it).
* Units: ``BUNIT`` must be a flux density (HMI says ``Mx/cm^2``, numerically Gauss);
  data are converted to Gauss where read. No ``BUNIT`` is taken as Gauss.
* WCS: helioprojective TAN with square pixels and any rotation (``CROTA2`` about 180
  for level 1, 0 for level 1.5, or a ``PC`` matrix), any size; the apparent solar
  radius from ``RSUN_OBS``, else from ``DSUN_OBS``. Mirrored images are refused.
  A raw JSOC segment has no WCS keys: its keywords come from the keyword query.
* Dataset ``*_hmi.webp``: already in the model frame, time from the stem (the GONG
  frame's minute, which the dataset pairs with HMI), NaN off the disk (its off-disk
  code 0 would read as -200 G).
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service.sources.magnetograms.base import Magnetogram, MagnetogramRejected, Unusable

__all__ = [
    "ImageDisk",
    "gauss_per_unit",
    "image_disk",
    "parse_jsoc_time",
    "parse_quality",
    "check_header",
    "read_fits",
    "read_header",
    "read_image_hdu",
    "read_webp",
    "stem_time",
]

# Photospheric radius for RSUN_OBS from DSUN_OBS when a header lacks it (HMI's RSUN_REF).
RSUN_REF_M = 6.96e8
# Tolerances of the WCS check: pixels are square to 0.1 %, the disk is at least this big.
_MAX_ANISOTROPY = 1e-3
_MIN_RADIUS_PX = 16.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- keywords
@contextmanager
def quiet_leap_seconds() -> Iterator[None]:
    """TAI <-> UTC past the leap-second table's horizon: erfa says "dubious year" from about
    2032 and goes on with the last known offset (a new leap second is announced six months
    ahead; a missed one shifts times by 1 s). Only that warning is silenced."""
    from erfa import ErfaWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dubious year", category=ErfaWarning)
        yield


def parse_quality(value: Any) -> int | None:
    """``QUALITY`` as an int, whatever carried it: ``"0x00000400"``, ``"1024"``, 1024, 1024.0.

    None when it cannot be known (None, NaN, text that is no number): JSOC sends hex
    strings, which drms 0.9.0 under pandas 3 turns into NaN (drms issue 167), so the
    raw strings are read here instead.
    """
    if value is None or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    text = str(value).strip()
    try:
        return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    except ValueError:
        return None


def parse_jsoc_time(value: Any) -> datetime | None:
    """JSOC or ISO time -> aware UTC; None for ``MISSING``, empty or unparseable.

    ``2014.03.19_00:00:00_TAI``, ``2014.03.19_00:01:07.50_TAI``, ``2014.03.19_00:00_TAI``,
    ``...Z`` / ``..._UTC`` (UTC), ``2014-03-19T00:00:54`` (UTC).
    """
    from astropy.time import Time

    text = str(value if value is not None else "").strip()
    if not text or text.upper().startswith("MISSING") or text.lower() == "nan":
        return None
    scale = "utc"
    for suffix, sc in (("_TAI", "tai"), ("_UTC", "utc"), ("_UT", "utc"), ("Z", "utc")):
        if text.upper().endswith(suffix):
            text, scale = text[: -len(suffix)], sc
            break
    if len(text) >= 10 and text[4] == "." and text[7] == ".":
        text = text[:4] + "-" + text[5:7] + "-" + text[8:10] + text[10:].replace("_", "T", 1)
        if len(text) == 16:  # YYYY-MM-DDThh:mm
            text += ":00"
    try:
        with quiet_leap_seconds():
            t = Time(text, scale=scale, format="isot").utc.to_datetime()
    except ValueError:
        return None
    return t.replace(tzinfo=UTC)


def header_obs_time(header: Any) -> datetime:
    """``T_OBS``, else ``DATE-OBS`` (or ``DATE_OBS``): the observation time, aware UTC."""
    for key in ("T_OBS", "DATE-OBS", "DATE_OBS"):
        if key in header:
            t = parse_jsoc_time(header[key])
            if t is not None:
                return t
    raise MagnetogramRejected(Unusable.NO_TIME, "no T_OBS or DATE-OBS that parses")


def gauss_per_unit(bunit: Any) -> float:
    """Gauss per data unit of ``BUNIT`` (``Mx/cm^2`` and ``Gauss`` give 1; none: Gauss)."""
    import astropy.units as u

    text = str(bunit or "").strip()
    if not text:
        return 1.0
    try:
        return float(u.Unit(text.replace("Mx/cm^2", "Mx / cm2")).to(u.G))
    except (ValueError, u.UnitConversionError, TypeError) as exc:
        raise MagnetogramRejected(Unusable.BAD_UNITS, f"BUNIT {text!r} is not a flux density") from exc


def check_quality(header: Any) -> int | None:
    """The header's ``QUALITY`` (None when absent); raises ``MagnetogramRejected`` unless 0."""
    if "QUALITY" not in header:
        return None
    quality = parse_quality(header["QUALITY"])
    if quality != 0:
        raise MagnetogramRejected(Unusable.QUALITY, f"QUALITY {header['QUALITY']!r}")
    return quality


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class ImageDisk:
    """Where the Sun is in an image, from its WCS.

    Attributes
    ----------
    center_px : (float, float)
        Disk centre, 0-based (x = column, y = row), FITS row order.
    radius_px : float
        Apparent solar radius in pixels.
    rotation_deg : float
        Image rotation in the ``CROTA2`` convention (about 180 for HMI level 1).
    arcsec_per_px : float
    rsun_arcsec : float
    """

    center_px: tuple[float, float]
    radius_px: float
    rotation_deg: float
    arcsec_per_px: float
    rsun_arcsec: float


def _wcs(header: Any) -> Any:
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    hdr = header if isinstance(header, fits.Header) else fits.Header(dict(header))
    with warnings.catch_warnings():
        # wcslib's datfix fills MJD-OBS from DATE-OBS and says so: expected, harmless.
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(hdr, naxis=2)


def _rsun_arcsec(header: Any) -> float:
    for key in ("RSUN_OBS",):
        try:
            value = float(header[key])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value) and 100.0 < value < 5000.0:
            return value
    try:
        dsun = float(header["DSUN_OBS"])
    except (KeyError, TypeError, ValueError):
        dsun = float("nan")
    if math.isfinite(dsun) and dsun > RSUN_REF_M:
        return math.degrees(math.asin(RSUN_REF_M / dsun)) * 3600.0
    raise MagnetogramRejected(Unusable.BAD_WCS, "no RSUN_OBS or DSUN_OBS: the disk size is unknown")


def image_disk(header: Any, shape: tuple[int, int]) -> ImageDisk:
    """The solar disk of an image of ``shape`` through its helioprojective WCS.

    Raises ``MagnetogramRejected`` (``no_wcs``: no helioprojective axes; ``bad_wcs``:
    mirrored, non-square pixels, no disk size, or the disk centre off the image).
    """
    ctype = (str(header.get("CTYPE1", "")).upper(), str(header.get("CTYPE2", "")).upper())
    if not (ctype[0].startswith("HPLN") and ctype[1].startswith("HPLT")) or "CDELT1" not in header:
        raise MagnetogramRejected(Unusable.NO_WCS, f"no helioprojective WCS (CTYPE {ctype}); a raw JSOC "
                                  "segment has none: export with protocol fits for the keywords")
    try:
        wcs = _wcs(header)
        psm = np.asarray(wcs.pixel_scale_matrix, dtype=float) * 3600.0  # arcsec / px
        cx, cy = (float(v) for v in wcs.wcs_world2pix([[0.0, 0.0]], 0)[0])
    except Exception as exc:  # astropy raises many kinds for absurd keys
        raise MagnetogramRejected(Unusable.BAD_WCS, f"{type(exc).__name__}: {exc}") from exc
    det = float(np.linalg.det(psm)) if np.isfinite(psm).all() else float("nan")
    if not det > 0:
        raise MagnetogramRejected(Unusable.BAD_WCS, f"pixel scale matrix {psm.tolist()} is mirrored or singular")
    sv = np.linalg.svd(psm, compute_uv=False)
    if sv[0] / sv[1] - 1.0 > _MAX_ANISOTROPY:
        raise MagnetogramRejected(Unusable.BAD_WCS, f"pixels are not square ({sv[0]:.4g} x {sv[1]:.4g} arcsec)")
    scale = math.sqrt(det)
    rsun = _rsun_arcsec(header)
    radius = rsun / scale
    ny, nx = shape
    if not (math.isfinite(cx) and math.isfinite(cy) and 0 <= cx < nx and 0 <= cy < ny):
        raise MagnetogramRejected(Unusable.BAD_WCS, f"disk centre ({cx:.1f}, {cy:.1f}) is off the {nx}x{ny} image")
    if radius < _MIN_RADIUS_PX:
        raise MagnetogramRejected(Unusable.BAD_WCS, f"disk radius {radius:.1f} px")
    rotation = math.degrees(math.atan2(psm[1, 0], psm[0, 0]))
    return ImageDisk((cx, cy), radius, rotation, scale, rsun)


# --------------------------------------------------------------------------- files
# Structure and storage keys of an HDU: not metadata of the magnetogram.
_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "PCOUNT", "GCOUNT",
               "BLANK", "BSCALE", "BZERO", "CHECKSUM", "DATASUM", "COMMENT", "HISTORY", "")


def _image_hdu(hdul: Any) -> tuple[int, Any, tuple[int, int]] | None:
    """Index of the first 2-D image HDU, its header merged over the primary's, its shape."""
    from astropy.io import fits

    for index, hdu in enumerate(hdul):
        if not getattr(hdu, "is_image", False) or hdu.header.get("NAXIS", 0) != 2:
            continue
        header = fits.Header()
        for source in (hdul[0].header, hdu.header) if index else (hdu.header,):
            for card in source.cards:
                if card.keyword not in _STRUCTURAL:
                    header[card.keyword] = card.value
        return index, header, (int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"]))
    return None


def read_header(source: bytes | Path) -> tuple[Any, tuple[int, int]]:
    """The merged header and shape of a FITS file's image without decompressing it."""
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(source) if isinstance(source, bytes) else source, memmap=False) as hdul:
            found = _image_hdu(hdul)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError...
        raise MagnetogramRejected(Unusable.UNREADABLE, f"{type(exc).__name__}: {exc}") from exc
    if found is None:
        raise MagnetogramRejected(Unusable.UNREADABLE, "no 2-D image in any HDU")
    return found[1], found[2]


def read_image_hdu(data: bytes) -> tuple[np.ndarray, Any]:
    """The first 2-D image of a FITS file (a RICE extension or the primary) as float32,
    and its header merged over the primary's (JSOC exports put the keywords there).

    BLANK pixels (off the limb in HMI level 1) become NaN. Raises ``MagnetogramRejected``.
    """
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            found = _image_hdu(hdul)
            if found is not None:
                return np.asarray(hdul[found[0]].data, dtype=np.float32), found[1]
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError...
        raise MagnetogramRejected(Unusable.UNREADABLE, f"{type(exc).__name__}: {exc}") from exc
    raise MagnetogramRejected(Unusable.UNREADABLE, "no 2-D image in any HDU")


def check_header(header: Any, shape: tuple[int, int]) -> datetime:
    """Everything a FITS magnetogram needs before use; its observation time.

    QUALITY 0 (or absent), a full-disk helioprojective WCS, a time, a flux-density
    BUNIT. Raises ``MagnetogramRejected`` with the first reason found.
    """
    check_quality(header)
    image_disk(header, shape)
    obs_time = header_obs_time(header)
    gauss_per_unit(header.get("BUNIT"))
    return obs_time


def read_fits(data: bytes, name: str) -> Magnetogram:
    """A FITS magnetogram with its WCS (level 1 as JSOC exports it, or a level-1.5 map)."""
    image, header = read_image_hdu(data)
    obs_time = check_header(header, image.shape)
    image = image * np.float32(gauss_per_unit(header.get("BUNIT")))
    meta = {"source": "file", "file": name, "quality": parse_quality(header.get("QUALITY")),
            "bunit": str(header.get("BUNIT", "")) or None}
    return Magnetogram(image, obs_time, sha256_hex(data), name, header=dict(header), meta=meta)


def stem_time(name: str) -> datetime | None:
    """The dataset stem's time (``2014-03-19T00_00_54_hmi.webp``), aware UTC, or None."""
    try:
        return datetime.strptime(name[:19], "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_webp(data: bytes, name: str, obs_time: datetime | None = None) -> Magnetogram:
    """A dataset ``*_hmi.webp`` (model frame), NaN off the disk; time from the stem unless given."""
    from service.science.dataset import read_hmi_gauss
    from service.science.preprocess import model_disk_mask

    obs_time = obs_time or stem_time(Path(name).name)
    if obs_time is None:
        raise MagnetogramRejected(Unusable.NO_TIME, f"{name}: no YYYY-MM-DDTHH_MM_SS stem")
    try:
        gauss = read_hmi_gauss(io.BytesIO(data))
    except Exception as exc:  # Pillow: UnidentifiedImageError, OSError...
        raise MagnetogramRejected(Unusable.UNREADABLE, f"{type(exc).__name__}: {exc}") from exc
    mask = model_disk_mask()
    if gauss.shape != mask.shape:
        raise MagnetogramRejected(Unusable.UNREADABLE, f"{name}: shape {gauss.shape}, the model frame is {mask.shape}")
    gauss = np.where(mask, gauss, np.float32(np.nan))
    return Magnetogram(gauss, obs_time, sha256_hex(data), Path(name).name, in_model_frame=True,
                       meta={"source": "dataset", "file": Path(name).name})
