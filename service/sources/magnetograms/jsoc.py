"""``jsoc``: HMI line-of-sight magnetograms from JSOC through drms (keyword query, raw segment).

Series are tried in order: the near-real-time ``hmi.M_720s_nrt`` (records every 12 min,
about an hour late), then the definitive ``hmi.M_720s`` (days late). A record is usable
when its ``QUALITY`` is 0 and its ``T_OBS`` is a time (JSOC says ``MISSING`` for a slot
without data). No e-mail is needed: the keyword query and the raw segment download are
public. Any JSOC-speaking server works (``SYNMAG_JSOC_URL``; tests and drills use
:mod:`service.devtools.jsoc_standin`).

Quirks, each once here:

* ``QUALITY`` arrives as a hex string (``"0x00000400"``); drms 0.9.0 under pandas 3
  turns it into NaN (drms issue 167, fixed in 0.9.1), so it is asked for unconverted
  (``skip_conversion``) and parsed by :func:`.files.parse_quality`.
* The raw segment carries no WCS: the header comes from the record's keywords
  (:func:`header_from_record`); JSOC names ``DATE-OBS`` ``DATE__OBS``, so ``T_OBS`` is
  the time; SDO's Stonyhurst longitude is taken as 0 (it is within 0.01 deg of Earth's).
* Record sets are in TAI (``hmi.M_720s[2014.03.18_23:54:00_TAI-2014.03.19_00:06:00_TAI]``).

Economy: which records exist is listed with three keywords per record, per series, and
remembered (:class:`Catalogue`): a span of time is listed again only once it is older than
``relist_after`` and still recent enough for records to appear in it. A record's
keywords and segment are fetched once and the last few kept, so a feed asking for its
prior every minute downloads each 12-minute record once.

Errors: HTTP 5xx/429, timeouts, refused or dropped connections and non-JSON answers are
``RetryableError`` (retried ``http_retries`` times with the capped, jittered backoff of
:class:`~service.sources.http.UpstreamHttp`); JSOC refusing the record set
(``status != 0``) or another 4xx is ``FatalError``.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from service import observability as obs
from service.errors import FatalError, RetryableError, SkipError
from service.sources.magnetograms.base import (
    TRUTH_MAX_OFFSET,
    Magnetogram,
    MagnetogramRejected,
    MagnetogramSource,
    Unusable,
    age_window,
    aware_utc,
)
from service.sources.magnetograms.files import (
    gauss_per_unit,
    image_disk,
    parse_jsoc_time,
    parse_quality,
    quiet_leap_seconds,
    read_image_hdu,
    sha256_hex,
)
from service.sources.registry import magnetogram_source
from service.vocabulary import UpstreamError

if TYPE_CHECKING:
    from service.settings import Settings
    from service.sources.http import UpstreamHttp

__all__ = ["JSOC_SERIES", "Catalogue", "JsocRecord", "JsocSource", "header_from_record", "jsoc_time",
           "record_set"]

log = logging.getLogger(__name__)

JSOC_URL = "http://jsoc.stanford.edu"
# JSOC series, in the order they are tried: near real time first, definitive later.
JSOC_SERIES = ("hmi.M_720s_nrt", "hmi.M_720s")
JSOC_SEGMENT = "magnetogram"
# What a listing asks per record: enough to choose one.
LIST_KEYS = ("T_REC", "T_OBS", "QUALITY")
# What a chosen record's query asks: everything its WCS, observer and units need.
RECORD_KEYS = ("T_REC", "T_OBS", "QUALITY", "CROTA2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2",
               "CRVAL1", "CRVAL2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2", "RSUN_OBS", "RSUN_REF",
               "DSUN_OBS", "CRLN_OBS", "CRLT_OBS", "TELESCOP", "INSTRUME", "CONTENT", "BUNIT")
# Keywords drms must leave as JSOC's strings (it would make QUALITY NaN: drms issue 167).
RAW_KEYS = ("QUALITY",)
# T_OBS is within seconds of T_REC; listings reach one slot beyond the window asked.
SLOT = timedelta(seconds=720)
# A listing reaches this far past the window asked (up to now), so that a window
# moving forward a minute at a time (verification, persistence) is listed hourly.
LOOKAHEAD = timedelta(hours=1)
FOREVER = datetime.max.replace(tzinfo=UTC)


def jsoc_time(t: datetime) -> str:
    """JSOC record-time string in TAI (``2014.03.19_00:00:00_TAI``) for an aware UTC datetime."""
    from astropy.time import Time

    with quiet_leap_seconds():
        tai = Time(aware_utc(t).replace(tzinfo=None), scale="utc").tai.to_datetime()
    return tai.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def record_set(series: str, lo: datetime, hi: datetime) -> str:
    """The record set of T_REC in ``[lo, hi]`` (aware UTC), inclusive."""
    return f"{series}[{jsoc_time(lo)}-{jsoc_time(hi)}]"


def header_from_record(row: dict[str, Any]) -> dict[str, Any]:
    """FITS keywords for the WCS from one keyword record (the raw segment carries none).

    Numbers drms could not convert (NaN, ``Invalid KeyLink``) are left out.
    """
    header: dict[str, Any] = {}
    for key in RECORD_KEYS:
        value = row.get(key)
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            continue
        header[key] = value.item() if hasattr(value, "item") else value
    header.setdefault("CTYPE1", "HPLN-TAN")
    header.setdefault("CTYPE2", "HPLT-TAN")
    header.setdefault("CUNIT1", "arcsec")
    header.setdefault("CUNIT2", "arcsec")
    t_obs = parse_jsoc_time(row.get("T_OBS"))
    if t_obs is not None:
        header["DATE-OBS"] = t_obs.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    if "CRLT_OBS" in header:
        header["HGLT_OBS"] = header["CRLT_OBS"]  # Stonyhurst and Carrington latitudes agree
    header.setdefault("HGLN_OBS", 0.0)  # SDO's Stonyhurst longitude is ~0 (geosynchronous)
    return header


@dataclass(frozen=True)
class JsocRecord:
    """One record of a listing: its name in the series and whether it can be used."""

    series: str
    t_rec: str  # as JSOC renders it: the record's name
    t_rec_utc: datetime
    t_obs: datetime | None
    quality: int | None
    quality_text: str

    @property
    def usable(self) -> bool:
        return self.quality == 0 and self.t_obs is not None


@dataclass
class _Span:
    lo: datetime
    hi: datetime
    listed_wall: datetime
    listed_mono: float


@dataclass
class Catalogue:
    """What is known of one series: records by ``T_REC``, and the T_REC spans listed.

    A span listed less than ``relist_after`` ago is trusted; so is one whose end was
    already ``settled`` old when listed (records no longer appear there). Everything else
    in a window asked for is listed again.
    """

    relist_after: timedelta
    settled: timedelta
    max_spans: int = 16
    records: dict[str, JsocRecord] = field(default_factory=dict)
    spans: list[_Span] = field(default_factory=list)

    def _fresh(self, span: _Span, now_mono: float) -> bool:
        young = now_mono - span.listed_mono < self.relist_after.total_seconds()
        return young or span.hi < span.listed_wall - self.settled

    def to_list(self, lo: datetime, hi: datetime, now_mono: float) -> tuple[datetime, datetime] | None:
        """The part of ``[lo, hi]`` to list now (one interval covering every gap), or None."""
        gaps = [(lo, hi)]
        for span in self.spans:
            if not self._fresh(span, now_mono):
                continue
            nxt = []
            for a, b in gaps:
                if span.hi < a or span.lo > b:
                    nxt.append((a, b))
                    continue
                if a < span.lo:
                    nxt.append((a, span.lo))
                if span.hi < b:
                    nxt.append((span.hi, b))
            gaps = nxt
        if not gaps:
            return None
        return min(a for a, _ in gaps), max(b for _, b in gaps)

    def add(self, lo: datetime, hi: datetime, records: list[JsocRecord], now_wall: datetime,
            now_mono: float) -> None:
        """Remember a listing of ``[lo, hi]`` made at ``now_wall`` (it replaces what was known there).

        No record can be newer than the listing itself: a listing reaching ``now_wall``
        covers everything after ``lo`` until it is stale.
        """
        if hi >= now_wall:
            hi = FOREVER
        for key in [k for k, r in self.records.items() if lo <= r.t_rec_utc <= hi]:
            del self.records[key]
        self.records.update({r.t_rec: r for r in records})
        self.spans.append(_Span(lo, hi, now_wall, now_mono))
        if len(self.spans) > self.max_spans:  # forget the oldest listings and their records
            self.spans = self.spans[-self.max_spans:]
            self.records = {k: r for k, r in self.records.items()
                            if any(s.lo <= r.t_rec_utc <= s.hi for s in self.spans)}

    def usable(self, lo: datetime, hi: datetime) -> list[JsocRecord]:
        """Usable records observed in ``[lo, hi]``, oldest first."""
        found = [r for r in self.records.values() if r.usable and lo <= r.t_obs <= hi]  # type: ignore[operator]
        return sorted(found, key=lambda r: r.t_obs)  # type: ignore[arg-type,return-value]


@magnetogram_source
class JsocSource(MagnetogramSource):
    """HMI line-of-sight magnetograms from a JSOC (or a stand-in) through drms.

    Parameters
    ----------
    base_url : str
        The JSOC root (``http://jsoc.stanford.edu``): CGIs under ``/cgi-bin/ajax/``,
        segments under the root.
    http : UpstreamHttp
        For segment downloads (and the retry policy of queries).
    series : tuple of str
        Tried in order.
    relist_after : timedelta
        A listing of recent records is trusted this long (NRT records come every 12 min).
    settled : timedelta
        Spans older than this when listed are never listed again (definitive records
        appear days late, so weeks).
    cache_records : int
        Records (4096x4096 float32 each: 64 MB) kept after download.
    """

    name = "jsoc"

    def __init__(self, base_url: str, http: UpstreamHttp, *, series: tuple[str, ...] = JSOC_SERIES,
                 relist_after: timedelta = timedelta(minutes=6), settled: timedelta = timedelta(days=30),
                 cache_records: int = 2, client: Any = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.series = series
        self.cache_records = cache_records
        self.catalogues = {s: Catalogue(relist_after, settled) for s in series}
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[tuple[str, str], Magnetogram] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> JsocSource:
        from service.sources.http import UpstreamHttp

        segment_http = UpstreamHttp(settings.model_copy(update={"http_timeout_s": settings.jsoc_timeout_s}),
                                    "synmag-jsoc")
        return cls(settings.jsoc_url, segment_http)

    @property
    def client(self) -> Any:
        """A drms client for :attr:`base_url` (drms builds every CGI URL from it)."""
        if self._client is None:
            import drms
            from drms.config import ServerConfig

            config = ServerConfig(name=f"synmag:{self.base_url}", cgi_baseurl=f"{self.base_url}/cgi-bin/ajax/",
                                  cgi_jsoc_info="jsoc_info", cgi_jsoc_fetch="jsoc_fetch",
                                  http_download_baseurl=f"{self.base_url}/")
            self._client = drms.Client(config)
        return self._client

    def abort(self) -> None:
        self.http.abort()

    def close(self) -> None:
        self.abort()
        self.http.close()

    # -- queries --------------------------------------------------------------------------
    def query(self, ds: str, keys: tuple[str, ...], segment: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
        """Keyword rows (and segment paths) of record set ``ds``, retried when transient."""
        return self.http.retrying(f"JSOC {ds}", lambda: self._query_once(ds, keys, segment))

    def _query_once(self, ds: str, keys: tuple[str, ...], segment: bool) -> tuple[list[dict[str, Any]], list[str]]:
        from drms.exceptions import DrmsError

        try:
            result = self.client.query(ds, key=",".join(keys), seg=JSOC_SEGMENT if segment else None,
                                       skip_conversion=list(RAW_KEYS))
        except urllib.error.HTTPError as exc:
            exc.close()  # drms leaves the error's response open
            kind = UpstreamError.HTTP_5XX if exc.code >= 500 or exc.code == 429 else UpstreamError.HTTP_4XX
            obs.upstream_errors_total.labels(kind=kind).inc()
            if kind is UpstreamError.HTTP_5XX:
                raise RetryableError(f"JSOC {ds}: HTTP {exc.code}") from exc
            raise FatalError(f"JSOC {ds}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            timeout = isinstance(exc, TimeoutError) or "timed out" in str(exc)
            obs.upstream_errors_total.labels(kind=UpstreamError.TIMEOUT if timeout else UpstreamError.CONNECTION).inc()
            raise RetryableError(f"JSOC {ds}: {exc!r}") from exc
        except json.JSONDecodeError as exc:  # an HTML error page from a proxy
            obs.upstream_errors_total.labels(kind=UpstreamError.CONNECTION).inc()
            raise RetryableError(f"JSOC {ds}: answer is not JSON ({exc})") from exc
        except DrmsError as exc:  # status != 0: JSOC refuses the record set itself
            raise FatalError(f"JSOC {ds}: {exc}") from exc
        keys_df, segs_df = result if segment else (result, None)
        rows = keys_df.to_dict("records") if len(keys_df.columns) else []
        paths = [str(p) for p in segs_df[JSOC_SEGMENT]] if segs_df is not None and len(segs_df.columns) else []
        return rows, paths

    def listing(self, series: str, lo: datetime, hi: datetime) -> Catalogue:
        """The catalogue of ``series`` with ``[lo, hi]`` (T_REC) listed recently enough."""
        catalogue = self.catalogues[series]
        with self._lock:
            gap = catalogue.to_list(lo, hi, time.monotonic())
        if gap is not None:
            now = self._clock()
            gap = (gap[0], max(gap[1], min(gap[1] + LOOKAHEAD, now)))
            rows, _ = self.query(record_set(series, *gap), LIST_KEYS)
            records = [_record(series, row) for row in rows]
            with self._lock:
                catalogue.add(gap[0], gap[1], [r for r in records if r is not None], now, time.monotonic())
        return catalogue

    # -- records ----------------------------------------------------------------------------
    def fetch(self, record: JsocRecord) -> Magnetogram:
        """The record's magnetogram: its keywords and raw segment, once (then kept)."""
        key = (record.series, record.t_rec)
        with self._lock:
            if key in self._records:
                self._records.move_to_end(key)
                return self._records[key]
        ds = f"{record.series}[{record.t_rec}]"
        rows, paths = self.query(ds, RECORD_KEYS, segment=True)
        if len(rows) != 1 or len(paths) != 1:
            raise RetryableError(f"JSOC {ds}: {len(rows)} records where one was listed")
        row, path = rows[0], paths[0]
        if parse_quality(row.get("QUALITY")) != 0:  # flagged since it was listed
            raise MagnetogramRejected(Unusable.QUALITY, f"{ds}: QUALITY {row.get('QUALITY')!r}")
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        try:
            data = self.http.get(url)
        except SkipError as exc:  # listed but not online: try another record
            raise MagnetogramRejected(Unusable.UNREADABLE, f"segment {url} not found") from exc
        image, _ = read_image_hdu(data)
        header = header_from_record(row)
        image_disk(header, image.shape)  # the keywords describe a usable full-disk WCS, or this raises
        image = image * np.float32(gauss_per_unit(header.get("BUNIT")))
        meta = {"source": self.name, "series": record.series, "t_rec": record.t_rec,
                "t_obs": str(row.get("T_OBS")), "quality": record.quality_text, "url": url}
        m = Magnetogram(image, record.t_obs, sha256_hex(data), record.series,  # type: ignore[arg-type]
                        header=header, meta=meta)
        with self._lock:
            self._records[key] = m
            while len(self._records) > self.cache_records:
                self._records.popitem(last=False)
        return m

    def _first(self, records: list[JsocRecord]) -> Magnetogram | None:
        for record in records:
            try:
                return self.fetch(record)
            except MagnetogramRejected as exc:
                log.warning("JSOC %s[%s] left out: %s", record.series, record.t_rec, exc)
        return None

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        obs_time = aware_utc(obs_time)
        lo, hi = obs_time - TRUTH_MAX_OFFSET, obs_time + TRUTH_MAX_OFFSET
        for series in self.series:
            near = self.listing(series, lo - SLOT, hi + SLOT).usable(lo, hi)
            found = self._first(sorted(near, key=lambda r: abs(r.t_obs - obs_time)))  # type: ignore[operator]
            if found is not None:
                return found
        return None

    def newest_before(self, t: datetime, min_age: timedelta, max_age: timedelta) -> Magnetogram | None:
        lo, hi = age_window(t, min_age, max_age)
        for series in self.series:
            found = self._first(self.listing(series, lo - SLOT, hi + SLOT).usable(lo, hi)[::-1])
            if found is not None:
                return found
        return None


def _record(series: str, row: dict[str, Any]) -> JsocRecord | None:
    t_rec_text = str(row.get("T_REC", ""))
    t_rec = parse_jsoc_time(t_rec_text)
    if t_rec is None:
        return None
    quality_raw = row.get("QUALITY")
    return JsocRecord(series, t_rec_text, t_rec, parse_jsoc_time(row.get("T_OBS")),
                      parse_quality(quality_raw), str(quality_raw))
