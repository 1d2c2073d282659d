"""Read NSO GONG H-alpha full-disk frames (``.fits.fz``) into a :class:`GongFrame`.

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
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time

from service.errors import FrameRejected

__all__ = [
    "FRAME_SHAPE",
    "GongFrame",
    "SITES",
    "Site",
    "parse_gong_filename",
    "read_gong",
    "site_by_code",
    "site_by_letter",
]

FRAME_SHAPE = (2048, 2048)

# Header keys a frame cannot be used without.
REQUIRED_KEYS = ("DATE-OBS", "FNDLMBXC", "FNDLMBYC", "FNDLMBMI", "FNDLMBMA", "SOLAR-R")

# Quality keys passed through to the gate (missing ones become None).
QUALITY_KEYS = ("SHARPNSS", "SKYBRITE", "HAERRCOD", "ECLIPSE", "LIMBPTCT", "IMGMN01")

# Plausible ranges; outside them a header is "absurd" rather than just a bad frame.
RADIUS_RANGE_PX = (700.0, 1100.0)
SOLAR_R_RANGE_ARCSEC = (900.0, 1000.0)  # true range over a year: ~944..976"
P_ANGLE_LIMIT_DEG = 30.0  # |P| <= 26.3 deg
B0_LIMIT_DEG = 8.0  # |B0| <= 7.25 deg
FIRST_FRAME = Time("2009-01-01T00:00:00", scale="utc")  # GONG H-alpha network began 2010
HPLN_CDELT_TOLERANCE = 0.05  # CDELT vs SOLAR-R / radius, relative

GONG_FILENAME = re.compile(r"^(?P<stamp>\d{14})(?P<letter>[A-Z])h\.fits(?:\.fz)?$")


@dataclass(frozen=True)
class Site:
    """One GONG H-alpha station."""

    code: str  # SITENAME header value
    letter: str  # letter in the file name
    name: str
    lat_deg: float
    lon_deg: float  # east positive


# The six GONG stations, written once. Coordinates are approximate (0.01 deg) and used
# only when a header lacks SITE-LAT/SITE-LON; Big Bear's are the sunpy sample header's.
SITES: tuple[Site, ...] = (
    Site("BB", "B", "Big Bear, USA", 34.2603, -116.9214),
    Site("CT", "C", "Cerro Tololo, Chile", -30.1697, -70.8065),
    Site("LE", "L", "Learmonth, Australia", -22.2192, 114.1031),
    Site("ML", "M", "Mauna Loa, USA", 19.5362, -155.5763),
    Site("TD", "T", "El Teide, Spain", 28.3003, -16.5122),
    Site("UD", "U", "Udaipur, India", 24.6252, 73.6706),
)
_BY_CODE = {s.code: s for s in SITES}
_BY_LETTER = {s.letter: s for s in SITES}


def site_by_code(code: str) -> Site:
    """The station with ``SITENAME`` ``code`` (e.g. ``"BB"``); KeyError if unknown."""
    return _BY_CODE[code.strip().upper()]


def site_by_letter(letter: str) -> Site:
    """The station with file-name letter ``letter`` (e.g. ``"B"``); KeyError if unknown."""
    return _BY_LETTER[letter.strip().upper()]


def parse_gong_filename(name: str) -> tuple[Time, str] | None:
    """Parse ``YYYYMMDDhhmmss{S}h.fits.fz`` into (time, site letter), or None."""
    m = GONG_FILENAME.match(Path(name).name)
    if not m:
        return None
    s = m["stamp"]
    try:
        t = Time(f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}:{s[12:14]}", scale="utc")
    except ValueError:
        return None
    return t, m["letter"]


@dataclass
class GongFrame:
    """A GONG H-alpha frame with its geometry and metadata, units attached.

    Attributes
    ----------
    data : numpy.ndarray
        float32 (2048, 2048) counts, solar north up, ``data[y, x]``.
    header : astropy.io.fits.Header
        The image header as read.
    obs_time : astropy.time.Time
        From ``DATE-OBS`` (UTC).
    site, site_letter : str
        Two-letter ``SITENAME`` (BB CT LE ML TD UD) and file-name letter (B C L M T U).
    center_px : tuple of float
        Disk centre (x, y), 0-based pixel (``FNDLMBXC/YC - 1``).
    radius_px : float
        Disk radius in pixels, mean of ``FNDLMBMI`` and ``FNDLMBMA``.
    rsun_arcsec, p_angle, b0, l0 : astropy.units.Quantity
        ``SOLAR-R`` (arcsec), ``SOLAR-P``, ``SOLAR-B0``, ``SOLAR-L0`` (deg).
    site_lat, site_lon : astropy.units.Quantity
        Station location (deg), from ``SITE-LAT/LON`` or the site table.
    generation : str
        ``"gongx"`` or ``"hpln"``.
    filename : str or None
    quality_keys : dict
        ``SHARPNSS``, ``SKYBRITE``, ``HAERRCOD``, ``ECLIPSE``, ``LIMBPTCT``, ``IMGMN01``
        as Python numbers, None where missing.
    """

    data: np.ndarray
    header: fits.Header
    obs_time: Time
    site: str
    site_letter: str
    center_px: tuple[float, float]
    radius_px: float
    radius_minmax_px: tuple[float, float]
    rsun_arcsec: u.Quantity
    p_angle: u.Quantity
    b0: u.Quantity
    l0: u.Quantity
    site_lat: u.Quantity
    site_lon: u.Quantity
    generation: str
    filename: str | None
    quality_keys: dict[str, float | int | None] = field(default_factory=dict)
    _observer: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def arcsec_per_px(self) -> u.Quantity:
        """Plate scale, ``SOLAR-R / radius`` (arcsec / pixel)."""
        return self.rsun_arcsec / (self.radius_px * u.pix)

    def observer(self) -> Any:
        """Observer location (HeliographicStonyhurst ``SkyCoord``) at ``obs_time``.

        Computed from the station's geodetic position as sunpy's
        ``GONGHalphaMap.observer_coordinate`` does (height 0). Cached.
        Use ``.radius`` (dsun), ``.lon`` (hgln) and ``.lat`` (hglt).
        """
        if self._observer is None:
            self._observer = observer_at(self.obs_time, self.site_lat, self.site_lon)
        return self._observer

    def observer_params(self) -> dict[str, float]:
        """``dsun_m``, ``hgln_deg``, ``hglt_deg`` of :attr:`observer` as floats."""
        obs = self.observer()
        return {
            "dsun_m": float(obs.radius.to_value(u.m)),
            "hgln_deg": float(obs.lon.to_value(u.deg)),
            "hglt_deg": float(obs.lat.to_value(u.deg)),
        }


def observer_at(obs_time: Time, lat: u.Quantity, lon: u.Quantity) -> Any:
    """HeliographicStonyhurst position of a ground station at ``obs_time``.

    Earth orientation comes from the bundled IERS tables under the process's offline
    policy (:mod:`service.science.timebase`): no download, no refusal, error < 1 km.
    """
    import sunpy.coordinates  # noqa: F401  (registers the heliographic frames)
    from astropy.coordinates import EarthLocation, SkyCoord

    loc = EarthLocation.from_geodetic(lat=lat, lon=lon)
    return SkyCoord(loc.get_itrs(obs_time)).heliographic_stonyhurst


def read_gong(source: str | Path | bytes, filename: str | None = None) -> GongFrame:
    """Read a GONG H-alpha frame from a path or from the file's bytes.

    Parameters
    ----------
    source : str, pathlib.Path or bytes
        The ``.fits.fz`` file, or its content (read in memory, no temporary file).
    filename : str, optional
        Original file name (``YYYYMMDDhhmmss{S}h.fits.fz``); default the path's name.

    Returns
    -------
    GongFrame

    Raises
    ------
    service.errors.FrameRejected
        ``corrupt_fits``, ``truncated``, ``wrong_shape``, ``missing_keys``,
        ``absurd_header`` or ``nan_pixels``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        path = Path(source)
        filename = filename or path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise FrameRejected("corrupt_fits", f"cannot read {path}: {exc}") from exc
    header, data = _decode(raw)
    return _build(header, data, filename)


def _decode(raw: bytes) -> tuple[fits.Header, np.ndarray]:
    """First image HDU with data (compressed or not): header and float32 pixels."""
    if not raw.startswith(b"SIMPLE  ="):
        raise FrameRejected("corrupt_fits", "not a FITS file (no SIMPLE card)")
    _check_length(raw)
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
        raise FrameRejected("corrupt_fits", f"cannot decode FITS: {exc}") from exc
    raise FrameRejected("wrong_shape", "no image HDU with data")


def _check_length(raw: bytes) -> None:
    """Raise ``truncated`` when the bytes end before the data the headers promise.

    astropy may only warn (or fail later, deep in decompression) on a short file, so
    the size each HDU declares (FITS standard: ``|BITPIX|/8 * GCOUNT * (PCOUNT +
    NAXIS1*...*NAXISn)``) is checked against the bytes actually present.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(
                io.BytesIO(raw), memmap=False, disable_image_compression=True, lazy_load_hdus=False
            ) as hdul:
                for i, hdu in enumerate(hdul):
                    h = hdu.header
                    naxis = int(h.get("NAXIS", 0))
                    n = int(np.prod([int(h.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1)]))
                    n = n if naxis else 0
                    size = abs(int(h.get("BITPIX", 8))) // 8 * int(h.get("GCOUNT", 1)) * (
                        int(h.get("PCOUNT", 0)) + n
                    ) if naxis else 0
                    end = hdul.fileinfo(i)["datLoc"] + size
                    if end > len(raw):
                        raise FrameRejected(
                            "truncated", f"HDU {i} needs {end} bytes, file has {len(raw)}"
                        )
    except FrameRejected:
        raise
    except Exception as exc:
        msg = str(exc)
        if "END" in msg or "truncated" in msg.lower() or "empty" in msg.lower():
            raise FrameRejected("truncated", f"header incomplete: {msg}") from exc
        raise FrameRejected("corrupt_fits", f"cannot parse FITS headers: {msg}") from exc


def _number(header: fits.Header, key: str) -> float | int | None:
    value = header.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _build(header: fits.Header, data: np.ndarray, filename: str | None) -> GongFrame:
    if data.shape != FRAME_SHAPE:
        raise FrameRejected("wrong_shape", f"image is {data.shape}, expected {FRAME_SHAPE}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise FrameRejected("nan_pixels", f"{bad} non-finite pixels")

    missing = [k for k in REQUIRED_KEYS if k not in header]
    if missing:
        raise FrameRejected("missing_keys", f"missing {', '.join(missing)}")
    nums = {k: _number(header, k) for k in REQUIRED_KEYS if k != "DATE-OBS"}
    not_num = [k for k, v in nums.items() if v is None]
    if not_num:
        raise FrameRejected("absurd_header", f"non-numeric {', '.join(not_num)}")

    obs_time = _parse_date(header["DATE-OBS"])
    xc, yc = float(nums["FNDLMBXC"]) - 1.0, float(nums["FNDLMBYC"]) - 1.0  # 1-based -> 0-based
    rmin, rmax = float(nums["FNDLMBMI"]), float(nums["FNDLMBMA"])
    for name, r in (("FNDLMBMI", rmin), ("FNDLMBMA", rmax)):
        if not RADIUS_RANGE_PX[0] <= r <= RADIUS_RANGE_PX[1]:
            raise FrameRejected("absurd_header", f"{name}={r} px outside {RADIUS_RANGE_PX}")
    ny, nx = data.shape
    if not (0 <= xc < nx and 0 <= yc < ny):
        raise FrameRejected("absurd_header", f"disk centre ({xc}, {yc}) off the image")
    rsun = float(nums["SOLAR-R"])
    if not SOLAR_R_RANGE_ARCSEC[0] <= rsun <= SOLAR_R_RANGE_ARCSEC[1]:
        raise FrameRejected("absurd_header", f"SOLAR-R={rsun} arcsec outside {SOLAR_R_RANGE_ARCSEC}")
    radius = 0.5 * (rmin + rmax)

    generation = _generation(header, rsun / radius)
    p, b0, l0 = _angles(header, obs_time)
    site, letter = _site(header, filename)
    lat = _number(header, "SITE-LAT")
    lon = _number(header, "SITE-LON")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -360 <= lon <= 360):
        lat, lon = site.lat_deg, site.lon_deg

    quality = {k: _number(header, k) for k in QUALITY_KEYS}
    return GongFrame(
        data=data,
        header=header,
        obs_time=obs_time,
        site=site.code,
        site_letter=letter,
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
        quality_keys=quality,
    )


def _parse_date(value: object) -> Time:
    try:
        t = Time(str(value).strip(), format="isot", scale="utc")
    except ValueError as exc:
        raise FrameRejected("absurd_header", f"DATE-OBS {value!r} unparsable") from exc
    if t < FIRST_FRAME or t > Time.now() + 1 * u.day:
        raise FrameRejected("absurd_header", f"DATE-OBS {t.isot} outside the GONG era")
    return t


def _generation(header: fits.Header, scale_arcsec: float) -> str:
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if ctype.startswith("GONGX"):
        return "gongx"
    if ctype.startswith("HPLN"):
        cdelt = _number(header, "CDELT1")
        if cdelt is None:
            raise FrameRejected("missing_keys", "HPLN-TAN header without CDELT1")
        unit = u.Unit(str(header.get("CUNIT1", "arcsec")).strip() or "arcsec")
        cdelt_arcsec = abs(float(cdelt)) * unit.to(u.arcsec)
        if abs(cdelt_arcsec / scale_arcsec - 1) > HPLN_CDELT_TOLERANCE:
            raise FrameRejected(
                "absurd_header",
                f"CDELT1={cdelt_arcsec:.4f}\" disagrees with SOLAR-R/radius={scale_arcsec:.4f}\"",
            )
        return "hpln"
    raise FrameRejected("absurd_header", f"unknown CTYPE1 {ctype!r}")


def _angles(header: fits.Header, obs_time: Time) -> tuple[u.Quantity, u.Quantity, u.Quantity]:
    """SOLAR-P, SOLAR-B0, SOLAR-L0 (deg); computed from the time when missing."""
    from sunpy.coordinates import sun

    p, b0, l0 = (_number(header, k) for k in ("SOLAR-P", "SOLAR-B0", "SOLAR-L0"))
    p_q = float(p) * u.deg if p is not None else sun.P(obs_time).to(u.deg)
    b0_q = float(b0) * u.deg if b0 is not None else sun.B0(obs_time).to(u.deg)
    l0_q = float(l0) * u.deg if l0 is not None else sun.L0(obs_time).to(u.deg)
    if abs(p_q.to_value(u.deg)) > P_ANGLE_LIMIT_DEG:
        raise FrameRejected("absurd_header", f"SOLAR-P={p_q} outside +-{P_ANGLE_LIMIT_DEG} deg")
    if abs(b0_q.to_value(u.deg)) > B0_LIMIT_DEG:
        raise FrameRejected("absurd_header", f"SOLAR-B0={b0_q} outside +-{B0_LIMIT_DEG} deg")
    return p_q, b0_q, l0_q


def _site(header: fits.Header, filename: str | None) -> tuple[Site, str]:
    """Station from SITENAME and/or the file-name letter; they must agree."""
    code = str(header.get("SITENAME", "") or header.get("SITE", "")).strip().upper()
    parsed = parse_gong_filename(filename) if filename else None
    by_code = _BY_CODE.get(code) if code else None
    if code and by_code is None:
        raise FrameRejected("absurd_header", f"unknown SITENAME {code!r}")
    by_letter = _BY_LETTER.get(parsed[1]) if parsed else None
    if parsed and by_letter is None:
        raise FrameRejected("absurd_header", f"unknown site letter {parsed[1]!r} in {filename}")
    if by_code and by_letter and by_code is not by_letter:
        raise FrameRejected(
            "absurd_header", f"SITENAME {code} disagrees with file name letter {parsed[1]}"
        )
    site = by_code or by_letter
    if site is None:
        raise FrameRejected("missing_keys", "no SITENAME and no GONG file name to tell the site")
    return site, site.letter
