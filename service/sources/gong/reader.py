"""Read NSO GONG H-alpha full-disk frames (``.fits.fz``) into a :class:`~service.science.frame.HalphaFrame`.

An NSO frame is an empty primary HDU followed by a tile-compressed (RICE) 2048x2048
int16 image. Two header generations exist:

``"gongx"`` (before October 2024)
    ``CTYPE1 = 'GONGX'``, ``CRPIX1/2 = 1024.0``, no ``CDELT``: the plate scale is
    ``SOLAR-R / FNDLMBMI`` (what sunpy's ``GONGHalphaMap.scale`` does).
``"hpln"`` (after)
    ``CTYPE1 = 'HPLN-TAN'``, ``CDELT1/2`` and ``CRPIX1/2 = 1024.5``.

Pixel convention of the disk keywords. The header is written by IRAF tasks of the
H-alpha Laminator (HAL), which count pixels from 1 (the GEOM history records
``fcol=1, lcol=2048``). The raw disk is fitted by GEOM (saved as ``GEOLMBXC/YC``,
``GTCLMB*``: about (1031.4, 1020.4), radius 907.6 in the sunpy sample header), then
LMBCOR re-centres and rescales it to ``xcenter=1024, ycenter=1024, majorax=900``,
which is what ``FNDLMBXC/YC/MI/MA`` record (1024.0, 1024.0, 900, 900) and what
``CRPIX1/2 = 1024.0`` of the gongx generation points at. So ``FNDLMBXC/YC`` are
1-based FITS pixel coordinates of the disk centre in the *final* image; this module
subtracts 1 to give 0-based ``center_px`` (numpy ``[y, x]`` indexing, ``x`` = column).
The ``GEOLMB*``/``GTCLMB*`` values describe the raw image before LMBCOR and are not
used.

Orientation. HAL removes the P angle (LMBCOR ``rot=``), so GONG H-alpha frames are
solar-north up already; sunpy's ``GONGHalphaMap`` applies no rotation either. ``SOLAR-P``
is recorded as ``p_angle`` for provenance only.

Time comes from ``DATE-OBS`` only: ``TIME-OBS`` has been seen inconsistent with it.

Hostile or broken files. Every header value is checked before it is used (a number
must be a finite real number in its plausible range, a unit must parse and be an angle)
and the image size declared by the headers is checked before anything is decompressed,
so a small file declaring a huge image costs nothing. Whatever is wrong, the reader
raises :class:`~service.errors.FrameRejected` with a reason, never another exception.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time

from service.errors import FrameRejected
from service.science.frame import HalphaFrame
from service.sources.gong.names import parse_name
from service.sources.gong.sites import Site, site_by_code
from service.vocabulary import Reason

__all__ = ["FRAME_SHAPE", "QUALITY_KEYS", "read_gong"]

SOURCE = "gong"
FRAME_SHAPE = (2048, 2048)

# Header keys a frame cannot be used without.
REQUIRED_KEYS = ("DATE-OBS", "FNDLMBXC", "FNDLMBYC", "FNDLMBMI", "FNDLMBMA", "SOLAR-R")

# GONG header key of each generic quality measure (service.science.frame.QUALITY_MEASURES).
QUALITY_KEYS = {
    "sharpness": "SHARPNSS",
    "sky_brightness": "SKYBRITE",
    "error_code": "HAERRCOD",
    "eclipse": "ECLIPSE",
    "limb_points": "LIMBPTCT",
}

# Plausible ranges; outside them a header is "absurd" rather than just a bad frame.
RADIUS_RANGE_PX = (700.0, 1100.0)
SOLAR_R_RANGE_ARCSEC = (900.0, 1000.0)  # true range over a year: ~944..976"
P_ANGLE_LIMIT_DEG = 30.0  # |P| <= 26.3 deg
B0_LIMIT_DEG = 8.0  # |B0| <= 7.25 deg
L0_RANGE_DEG = (-360.0, 360.0)
FIRST_FRAME = Time("2009-01-01T00:00:00", scale="utc")  # GONG H-alpha network began 2010
HPLN_CDELT_TOLERANCE = 0.05  # CDELT vs SOLAR-R / radius, relative


def read_gong(source: str | Path | bytes, filename: str | None = None) -> HalphaFrame:
    """Read a GONG H-alpha frame from a path or from the file's bytes.

    Parameters
    ----------
    source : str, pathlib.Path or bytes
        The ``.fits.fz`` file, or its content (read in memory, no temporary file).
    filename : str, optional
        Original file name (``YYYYMMDDhhmmss{S}h.fits.fz``); default the path's name.

    Returns
    -------
    HalphaFrame

    Raises
    ------
    service.errors.FrameRejected
        ``corrupt_fits``, ``truncated``, ``wrong_shape``, ``missing_keys``,
        ``absurd_header`` or ``nan_pixels``; never another exception.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        path = Path(source)
        filename = filename or path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise FrameRejected(Reason.CORRUPT_FITS, f"cannot read {path}: {exc}") from exc
    header, data = _decode(raw)
    try:
        return _build(header, data, filename)
    except FrameRejected:
        raise
    except Exception as exc:  # a check this module lacks: still a reason, never a crash
        raise FrameRejected(Reason.ABSURD_HEADER, f"unusable header ({type(exc).__name__}: {exc})") from exc


def _decode(raw: bytes) -> tuple[fits.Header, np.ndarray]:
    """First image HDU with data (compressed or not): header and float32 pixels."""
    if not raw.startswith(b"SIMPLE  ="):
        raise FrameRejected(Reason.CORRUPT_FITS, "not a FITS file (no SIMPLE card)")
    _check_layout(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy reports damage as warnings: make it fatal
            with fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=False) as hdul:
                for hdu in hdul:
                    if isinstance(hdu, (fits.CompImageHDU, fits.PrimaryHDU, fits.ImageHDU)):
                        if hdu.header.get("NAXIS", 0) == 0 and not isinstance(
                            hdu, fits.CompImageHDU
                        ):
                            continue
                        data = hdu.data
                        if data is None:
                            continue
                        return hdu.header.copy(), np.asarray(data, dtype=np.float32)
    except FrameRejected:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise FrameRejected(Reason.CORRUPT_FITS, f"cannot decode FITS: {exc}") from exc
    raise FrameRejected(Reason.WRONG_SHAPE, "no image HDU with data")


def _check_layout(raw: bytes) -> None:
    """Before any decompression: the declared image size, and bytes for every HDU.

    The headers are parsed with image compression disabled (a tile-compressed image is
    then the binary table it is stored as). An image HDU declaring another shape than
    :data:`FRAME_SHAPE` (``ZNAXISn`` when compressed) is ``wrong_shape`` here, so a small
    file declaring a huge image is never inflated. Then ``truncated`` when the bytes end
    before the data the headers promise: astropy may only warn (or fail later, deep in
    decompression) on a short file, so the size each HDU declares (FITS standard:
    ``|BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1*...*NAXISn)``) is checked against the bytes present.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(
                io.BytesIO(raw), memmap=False, disable_image_compression=True, lazy_load_hdus=False
            ) as hdul:
                for i, hdu in enumerate(hdul):
                    h = hdu.header
                    prefix = "Z" if h.get("ZIMAGE") is True else ""
                    naxis = int(h.get(f"{prefix}NAXIS", 0))
                    is_image = bool(prefix) or i == 0 or str(h.get("XTENSION", "")).strip() == "IMAGE"
                    if is_image and naxis:
                        shape = tuple(int(h.get(f"{prefix}NAXIS{k}", 0)) for k in range(naxis, 0, -1))
                        if shape != FRAME_SHAPE:
                            raise FrameRejected(
                                Reason.WRONG_SHAPE, f"HDU {i} declares an image of {shape}, expected {FRAME_SHAPE}"
                            )
                    end = hdul.fileinfo(i)["datLoc"] + _declared_bytes(h)
                    if end > len(raw):
                        raise FrameRejected(
                            Reason.TRUNCATED, f"HDU {i} needs {end} bytes, file has {len(raw)}"
                        )
    except FrameRejected:
        raise
    except Exception as exc:
        msg = str(exc)
        if "END" in msg or "truncated" in msg.lower() or "empty" in msg.lower():
            raise FrameRejected(Reason.TRUNCATED, f"header incomplete: {msg}") from exc
        raise FrameRejected(Reason.CORRUPT_FITS, f"cannot parse FITS headers: {msg}") from exc


def _declared_bytes(h: fits.Header) -> int:
    """Bytes of data an HDU header declares (as stored, compressed or not)."""
    naxis = int(h.get("NAXIS", 0))
    if not naxis:
        return 0
    n = math.prod(int(h.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1))
    return abs(int(h.get("BITPIX", 8))) // 8 * int(h.get("GCOUNT", 1)) * (int(h.get("PCOUNT", 0)) + n)


def _number(header: fits.Header, key: str) -> float | int | None:
    """The value of ``key`` if it is a finite real number, else None."""
    value = header.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _in_range(name: str, value: float, low: float, high: float, unit: str = "") -> float:
    if not low <= value <= high:
        raise FrameRejected(Reason.ABSURD_HEADER, f"{name}={value}{unit} outside [{low}, {high}]")
    return value


def _build(header: fits.Header, data: np.ndarray, filename: str | None) -> HalphaFrame:
    if data.shape != FRAME_SHAPE:
        raise FrameRejected(Reason.WRONG_SHAPE, f"image is {data.shape}, expected {FRAME_SHAPE}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise FrameRejected(Reason.NAN_PIXELS, f"{bad} non-finite pixels")

    missing = [k for k in REQUIRED_KEYS if k not in header]
    if missing:
        raise FrameRejected(Reason.MISSING_KEYS, f"missing {', '.join(missing)}")
    nums = {k: _number(header, k) for k in REQUIRED_KEYS if k != "DATE-OBS"}
    not_num = [k for k, v in nums.items() if v is None]
    if not_num:
        raise FrameRejected(Reason.ABSURD_HEADER, f"non-numeric or non-finite {', '.join(not_num)}")

    obs_time = _parse_date(header["DATE-OBS"])
    xc, yc = float(nums["FNDLMBXC"]) - 1.0, float(nums["FNDLMBYC"]) - 1.0  # 1-based -> 0-based
    rmin = _in_range("FNDLMBMI", float(nums["FNDLMBMI"]), *RADIUS_RANGE_PX, " px")
    rmax = _in_range("FNDLMBMA", float(nums["FNDLMBMA"]), *RADIUS_RANGE_PX, " px")
    ny, nx = data.shape
    if not (0 <= xc < nx and 0 <= yc < ny):
        raise FrameRejected(Reason.ABSURD_HEADER, f"disk centre ({xc}, {yc}) off the image")
    rsun = _in_range("SOLAR-R", float(nums["SOLAR-R"]), *SOLAR_R_RANGE_ARCSEC, '"')
    radius = 0.5 * (rmin + rmax)

    generation = _generation(header, rsun / radius)
    p, b0, l0 = _angles(header, obs_time)
    site = _site(header, filename)
    lat = _number(header, "SITE-LAT")
    lon = _number(header, "SITE-LON")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -360 <= lon <= 360):
        lat, lon = site.lat_deg, site.lon_deg

    quality = {measure: _number(header, key) for measure, key in QUALITY_KEYS.items()}
    return HalphaFrame(
        data=data,
        header=header,
        obs_time=obs_time,
        source=SOURCE,
        site=site.code,
        center_px=(xc, yc),
        radius_px=radius,
        radius_minmax_px=(rmin, rmax),
        rsun_arcsec=rsun * u.arcsec,
        p_angle=p,
        b0=b0,
        l0=l0,
        site_lat=float(lat) * u.deg,
        site_lon=float(lon) * u.deg,
        generation=generation,
        filename=Path(filename).name if filename else None,
        expected_shape=FRAME_SHAPE,
        quality=quality,
    )


def _parse_date(value: object) -> Time:
    if not isinstance(value, str) or len(value) > 40:
        raise FrameRejected(Reason.ABSURD_HEADER, f"DATE-OBS {value!r} is not an ISO date")
    try:
        t = Time(value.strip(), format="isot", scale="utc")
    except Exception as exc:  # astropy raises ValueError, and others for odd strings
        raise FrameRejected(Reason.ABSURD_HEADER, f"DATE-OBS {value!r} unparsable") from exc
    if t < FIRST_FRAME or t > Time.now() + 1 * u.day:
        raise FrameRejected(Reason.ABSURD_HEADER, f"DATE-OBS {t.isot} outside the GONG era")
    return t


def _angle_unit(header: fits.Header, key: str) -> u.UnitBase:
    """The angle unit ``key`` names (default arcsec); ``absurd_header`` for anything else."""
    text = header.get(key, "arcsec")
    if not isinstance(text, str):
        raise FrameRejected(Reason.ABSURD_HEADER, f"{key}={text!r} is not a unit name")
    try:
        unit = u.Unit(text.strip() or "arcsec")
    except Exception as exc:  # ValueError, and TypeError for odd input
        raise FrameRejected(Reason.ABSURD_HEADER, f"{key}={text!r} is not a unit") from exc
    if unit.physical_type != "angle":
        raise FrameRejected(Reason.ABSURD_HEADER, f"{key}={text!r} is not an angle")
    return unit


def _generation(header: fits.Header, scale_arcsec: float) -> str:
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if ctype.startswith("GONGX"):
        return "gongx"
    if ctype.startswith("HPLN"):
        cdelt = _number(header, "CDELT1")
        if cdelt is None:
            raise FrameRejected(Reason.MISSING_KEYS, "HPLN-TAN header without a finite CDELT1")
        cdelt_arcsec = abs(float(cdelt)) * _angle_unit(header, "CUNIT1").to(u.arcsec)
        if abs(cdelt_arcsec / scale_arcsec - 1) > HPLN_CDELT_TOLERANCE:
            raise FrameRejected(
                Reason.ABSURD_HEADER,
                f"CDELT1={cdelt_arcsec:.4f}\" disagrees with SOLAR-R/radius={scale_arcsec:.4f}\"",
            )
        return "hpln"
    raise FrameRejected(Reason.ABSURD_HEADER, f"unknown CTYPE1 {ctype!r}")


def _angles(header: fits.Header, obs_time: Time) -> tuple[u.Quantity, u.Quantity, u.Quantity]:
    """SOLAR-P, SOLAR-B0, SOLAR-L0 (deg); computed from the time when missing."""
    from sunpy.coordinates import sun

    p, b0, l0 = (_number(header, k) for k in ("SOLAR-P", "SOLAR-B0", "SOLAR-L0"))
    p_q = float(p) * u.deg if p is not None else sun.P(obs_time).to(u.deg)
    b0_q = float(b0) * u.deg if b0 is not None else sun.B0(obs_time).to(u.deg)
    l0_q = float(l0) * u.deg if l0 is not None else sun.L0(obs_time).to(u.deg)
    _in_range("SOLAR-P", p_q.to_value(u.deg), -P_ANGLE_LIMIT_DEG, P_ANGLE_LIMIT_DEG, " deg")
    _in_range("SOLAR-B0", b0_q.to_value(u.deg), -B0_LIMIT_DEG, B0_LIMIT_DEG, " deg")
    _in_range("SOLAR-L0", l0_q.to_value(u.deg), *L0_RANGE_DEG, " deg")
    return p_q, b0_q, l0_q


def _site(header: fits.Header, filename: str | None) -> Site:
    """Station from SITENAME and/or the file name; they must agree."""
    code = str(header.get("SITENAME", "") or header.get("SITE", "")).strip().upper()
    by_code = site_by_code(code) if code else None
    if code and by_code is None:
        raise FrameRejected(Reason.ABSURD_HEADER, f"unknown SITENAME {code[:16]!r}")
    parsed = parse_name(Path(filename).name) if filename else None
    by_name = parsed[1] if parsed else None
    if by_code and by_name and by_code is not by_name:
        raise FrameRejected(
            Reason.ABSURD_HEADER, f"SITENAME {code} disagrees with file name {Path(filename).name}"  # type: ignore[arg-type]
        )
    site = by_code or by_name
    if site is None:
        raise FrameRejected(Reason.MISSING_KEYS, "no SITENAME and no GONG file name to tell the site")
    return site
