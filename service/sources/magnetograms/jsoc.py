"""HMI line-of-sight magnetograms from JSOC through drms (keyword query, raw segment).

The near-real-time series ``hmi.M_720s_nrt`` is tried first, then the definitive
``hmi.M_720s`` (available days later); only records with ``QUALITY`` 0 are used. No
e-mail is needed: the keyword query and the raw segment download are public. The
full-resolution 4096x4096 image goes through :mod:`service.verification.prep`.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import RetryableError
from service.sources.magnetograms.base import Magnetogram, MagnetogramSource
from service.sources.registry import magnetogram_source

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger(__name__)

# JSOC series, in the order they are tried: near real time first, definitive later.
JSOC_SERIES = ("hmi.M_720s_nrt", "hmi.M_720s")
JSOC_SEGMENT = "magnetogram"
# Keywords read with each record: everything prep needs to build the WCS and observer.
JSOC_KEYS = ("T_REC", "T_OBS", "QUALITY", "CROTA2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2",
             "CRVAL1", "CRVAL2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2", "RSUN_OBS", "DSUN_OBS",
             "CRLN_OBS", "CRLT_OBS", "HGLN_OBS", "DATE-OBS", "TELESCOP", "INSTRUME", "BUNIT")
# A 720 s magnetogram integrates +-6 min around T_REC: the nearest record within this is used.
JSOC_MAX_OFFSET = timedelta(minutes=6)


def jsoc_time(t: datetime) -> str:
    """JSOC record-time string in TAI (``2014.03.19_00:00:00_TAI``) for an aware UTC datetime."""
    from astropy.time import Time

    tai = Time(t.astimezone(UTC).replace(tzinfo=None), scale="utc").tai.to_datetime()
    return tai.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def build_query(series: str, obs_time: datetime, window: timedelta = JSOC_MAX_OFFSET) -> str:
    """drms record set for the records within ``window`` of ``obs_time``.

    ``hmi.M_720s[2014.03.18_23:54:00_TAI/12m]``: T_REC from start, over the duration.
    """
    start = obs_time - window
    minutes = int(round(2 * window.total_seconds() / 60))
    return f"{series}[{jsoc_time(start)}/{minutes}m]"


def parse_jsoc_time(value: str) -> datetime | None:
    """``2014.03.19_00:00:00_TAI`` or ``2014.03.19_00:00:37.60_TAI`` (or ISO) -> aware UTC."""
    from astropy.time import Time

    text = str(value).strip()
    if not text or text.upper().startswith("MISSING"):
        return None
    scale = "utc"
    for suffix, sc in (("_TAI", "tai"), ("_UTC", "utc"), ("Z", "utc")):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], sc
            break
    text = text.replace("_", "T").replace(".", "-", 2) if "." in text[:8] else text
    try:
        t = Time(text, scale=scale).utc.to_datetime()
    except ValueError:
        return None
    return t.replace(tzinfo=UTC)


def select_record(keys: Any, obs_time: datetime, max_offset: timedelta = JSOC_MAX_OFFSET) -> int | None:
    """Row index of the usable record nearest ``obs_time``, or None.

    ``keys`` is drms's keyword table (a pandas DataFrame, or a list of dicts). A
    record is usable when ``QUALITY`` is 0 and ``T_OBS`` parses (missing data
    have ``T_OBS`` = ``MISSING``).
    """
    rows = keys.to_dict("records") if hasattr(keys, "to_dict") else list(keys)
    best, best_dt = None, None
    for i, row in enumerate(rows):
        t = parse_jsoc_time(row.get("T_OBS") or row.get("T_REC", ""))
        quality = row.get("QUALITY")
        try:
            quality = int(quality)
        except (TypeError, ValueError):
            continue
        if t is None or quality != 0:
            continue
        dt = abs(t - obs_time)
        if dt <= max_offset and (best_dt is None or dt < best_dt):
            best, best_dt = i, dt
    return best


def header_from_record(row: dict[str, Any]) -> dict[str, Any]:
    """FITS keywords for prep from one keyword record (the raw segment carries none)."""
    header: dict[str, Any] = {}
    for key in JSOC_KEYS:
        value = row.get(key)
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            continue
        header[key] = value.item() if hasattr(value, "item") else value
    t_obs = parse_jsoc_time(row.get("T_OBS", ""))
    if t_obs is not None:
        header["DATE-OBS"] = t_obs.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    header.setdefault("CTYPE1", "HPLN-TAN")
    header.setdefault("CTYPE2", "HPLT-TAN")
    header.setdefault("CUNIT1", "arcsec")
    header.setdefault("CUNIT2", "arcsec")
    if "CRLT_OBS" in header:
        header["HGLT_OBS"] = header["CRLT_OBS"]  # Stonyhurst and Carrington latitudes agree
    header.setdefault("HGLN_OBS", 0.0)  # SDO's Stonyhurst longitude is ~0 (geosynchronous)
    return header


@magnetogram_source
class JsocSource(MagnetogramSource):
    """HMI line-of-sight magnetograms from JSOC through drms.

    Parameters
    ----------
    client : drms.Client, optional
        Default ``drms.Client()`` (JSOC); tests pass one configured for a local server.
    series : sequence of str
        Series tried in order (near real time, then definitive).
    http : httpx.Client, optional
        For the raw segment download.
    """

    name = "jsoc"

    def __init__(self, client: Any = None, series: tuple[str, ...] = JSOC_SERIES,
                 segment_base_url: str = "http://jsoc.stanford.edu", timeout: float = 120.0) -> None:
        self._client = client
        self.series = series
        self.segment_base_url = segment_base_url.rstrip("/")
        self.timeout = timeout

    @property
    def client(self) -> Any:
        if self._client is None:
            import drms

            self._client = drms.Client()
        return self._client

    @classmethod
    def from_settings(cls, settings: Settings) -> JsocSource:
        return cls()

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        for series in self.series:
            query = build_query(series, obs_time)
            try:
                keys, segs = self.client.query(query, key=",".join(JSOC_KEYS), seg=JSOC_SEGMENT)
            except Exception as exc:  # drms raises plain Exceptions for HTTP/JSON failures
                raise RetryableError(f"JSOC query {query}: {exc}") from exc
            i = select_record(keys, obs_time)
            if i is None:
                log.debug("no usable record in %s", query)
                continue
            row = keys.iloc[i].to_dict() if hasattr(keys, "iloc") else dict(keys[i])
            seg = segs.iloc[i][JSOC_SEGMENT] if hasattr(segs, "iloc") else segs[i][JSOC_SEGMENT]
            data = self._download(seg)
            header = header_from_record(row)
            meta = {"source": "jsoc", "series": series, "t_rec": str(row.get("T_REC")),
                    "t_obs": str(row.get("T_OBS")), "quality": int(row.get("QUALITY", 0))}
            return Magnetogram(data, header, False, meta)
        return None

    def _download(self, segment_path: str) -> np.ndarray:
        """The raw segment (Rice-compressed FITS) -> float32 Gauss, NaN where missing."""
        import httpx
        from astropy.io import fits

        url = segment_path if segment_path.startswith("http") else self.segment_base_url + segment_path
        try:
            res = httpx.get(url, timeout=self.timeout, follow_redirects=True)
            res.raise_for_status()
        except httpx.HTTPError as exc:
            raise RetryableError(f"JSOC segment {url}: {exc}") from exc
        with fits.open(io.BytesIO(res.content)) as hdul:
            hdu = next(h for h in hdul if getattr(h, "data", None) is not None)
            return np.asarray(hdu.data, dtype=np.float32)
