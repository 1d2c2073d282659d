"""A stand-in JSOC on loopback: drms's own HTTP requests answered for ``hmi.M_720s(_nrt)``.

For tests (in a thread: :func:`serve_in_thread`) and drills (``synmag jsoc-standin DIR
--port P``), from a folder of dataset days (``*_hmi.webp``). It speaks the part of
JSOC that drms uses without an e-mail address:

``GET /cgi-bin/ajax/jsoc_info?op=series_struct&ds=SERIES``
    the series' keywords with their types (drms reads them to convert numbers);
``GET /cgi-bin/ajax/jsoc_info?op=rs_list&ds=RECORDSET&key=K1,K2&seg=magnetogram[&n=N][&R=1]``
    ``{"keywords": [{"name", "values"}], "segments": [{"name", "values", "dims"}],
    "count", "runtime", "status": 0}``, every value a string as JSOC renders it:
    ``QUALITY`` as hex (``"0x00000000"``), times as ``2014.03.19_00:00:00_TAI``, an
    unknown keyword as ``"Invalid KeyLink"``; a bad record set ``{"status": 1, "error"}``;
``GET /SUMn/Dm/S00000/magnetogram.fits``
    the raw segment: a RICE-compressed level-1 image without WCS keys
    (:mod:`service.devtools.hmi_writer`).

Record sets: ``SERIES[T]`` (the 720 s slot of T), ``[T/12m]`` (T_REC in [T, T + 12 min)),
``[T1-T2]`` (inclusive), ``[$]`` (the last record), ``[]``; times in JSOC's
``YYYY.MM.DD_hh:mm[:ss]_TAI`` form (``_UTC``/``Z`` too; no zone: TAI, T_REC's unit).
SQL filters (``[? QUALITY=0 ?]``) are refused as unsupported.

Records. Each dataset day is one record of each series, at the 720 s slot nearest its
stem time (``T_OBS`` at the slot), optionally moved by whole years keeping the day of
year (``shift_years``: e.g. 11 moves 2014 into cycle 25), and then served in the polarity
of the date it is stamped with, as the replay archive's truth is: negated when the stamped
date's solar cycle has the other Hale parity from the data's own date
(:func:`service.science.cycles.polarity_sign`), so a cycle-24 day moved into cycle 25 looks
like a cycle-25 Sun. Level-1 images are ``naxis`` square (4096 by default, as JSOC; a smaller one
keeps the sky with a coarser ``CDELT``, for fast tests), made on first download and kept.
Tests change records (:meth:`JsocStandin.set_quality`, :meth:`JsocStandin.drop`) and
inject failures (:attr:`JsocStandin.fail_next`: that many requests answer HTTP 500);
:attr:`JsocStandin.requests` counts requests by kind.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from service.devtools.hmi_writer import (
    T_REC_STEP,
    jsoc_tai,
    level1_geometry,
    level1_image,
    level1_keywords,
    raw_segment_bytes,
    t_rec_slot,
    tai_naive,
    utc_aware,
)
from service.science.cycles import cycle_of, polarity_sign

log = logging.getLogger(__name__)

__all__ = ["SERIES", "JsocStandin", "make_server", "serve_in_thread"]

SERIES = ("hmi.M_720s_nrt", "hmi.M_720s")
SEGMENT = "magnetogram"
INFO_PATH = "/cgi-bin/ajax/jsoc_info"
# Keywords of the series and their DRMS types (what series_struct tells drms).
KEYWORD_TYPES: dict[str, str] = {
    "T_REC": "time", "T_OBS": "time", "DATE__OBS": "string", "QUALITY": "int",
    "TELESCOP": "string", "INSTRUME": "string", "CONTENT": "string", "BUNIT": "string",
    "CTYPE1": "string", "CTYPE2": "string", "CUNIT1": "string", "CUNIT2": "string",
    "CDELT1": "float", "CDELT2": "float", "CRPIX1": "float", "CRPIX2": "float",
    "CRVAL1": "float", "CRVAL2": "float", "CROTA2": "float",
    "RSUN_OBS": "double", "RSUN_REF": "double", "DSUN_OBS": "double",
    "CRLN_OBS": "float", "CRLT_OBS": "float",
}
_CACHE_SEGMENTS = 3
_SEGMENT_URL = re.compile(r"^/SUM(\d+)/D(\d+)/S00000/" + SEGMENT + r"\.fits$")
_RECORDSET = re.compile(r"^\s*(?P<series>[A-Za-z_][\w.]*)\s*(?P<filters>(?:\[[^\]]*\]\s*)*)$")
_TIME = r"\d{4}\.\d{2}\.\d{2}(?:_\d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?)?(?:_TAI|_UTC|_UT|Z)?"
_DURATION = re.compile(r"^(\d+(?:\.\d*)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RecordSetError(ValueError):
    """A record set the stand-in (or JSOC) cannot answer: ``{"status": 1, "error": ...}``."""


@dataclass
class Record:
    series: str
    t_rec: datetime  # naive TAI slot
    recnum: int
    source: Path  # the dataset's *_hmi.webp
    quality: int = 0
    sign: int = 1  # -1 when the stamped date is of the other Hale parity than the data's


    @property
    def segment_path(self) -> str:
        return f"/SUM{self.recnum % 97 + 1}/D{100000 + self.recnum}/S00000/{SEGMENT}.fits"


def shift_by_years(t: datetime, years: int) -> datetime:
    """``t`` moved by whole years, keeping the day of year (29 February -> 28 February)."""
    try:
        return t.replace(year=t.year + years)
    except ValueError:
        return t.replace(year=t.year + years, day=28)


def parse_time(text: str) -> datetime:
    """A JSOC time (TAI unless it says ``_UTC``/``_UT``/``Z``) -> naive TAI."""
    text = text.strip()
    if not re.fullmatch(_TIME, text):
        raise RecordSetError(f"cannot parse time {text!r}")
    zone = "TAI"
    for suffix in ("_TAI", "_UTC", "_UT", "Z"):
        if text.endswith(suffix):
            text, zone = text[: -len(suffix)], ("TAI" if suffix == "_TAI" else "UTC")
            break
    date_part, _, clock = text.partition("_")
    parts = [int(p) for p in date_part.split(".")]
    h, m, s = (clock.split(":") + ["0", "0", "0"])[:3] if clock else ("0", "0", "0")
    sec = float(s)
    t = datetime(parts[0], parts[1], parts[2], int(h), int(m)) + timedelta(seconds=sec)
    return t if zone == "TAI" else tai_naive(t.replace(tzinfo=UTC))


class JsocStandin:
    """The stand-in's records and answers (the HTTP layer is :func:`make_server`).

    Parameters
    ----------
    folder : path
        Dataset days (``*_hmi.webp``).
    shift_years : int
        Whole years added to every date (day of year kept).
    naxis : int
        Side of the level-1 images (4096 as JSOC).
    series : tuple of str
        The series served, each holding every day.
    """

    def __init__(self, folder: str | Path, *, shift_years: int = 0, naxis: int = 4096,
                 series: tuple[str, ...] = SERIES) -> None:
        folder = Path(folder)
        files = sorted(folder.glob("*_hmi.webp"))
        if not files:
            raise FileNotFoundError(f"no *_hmi.webp in {folder}")
        if naxis < 64:
            raise ValueError(f"naxis {naxis} is too small for a full-disk image")
        self.naxis = naxis
        self.shift = shift_years
        self.records: dict[str, list[Record]] = {s: [] for s in series}
        recnum = 0
        for path in files:
            stem = datetime.strptime(path.name[:19], "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)
            stamped = shift_by_years(stem, shift_years)
            sign = polarity_sign(stamped, cycle_of(stem))
            slot = t_rec_slot(stamped)
            for s in series:
                recnum += 1
                self.records[s].append(Record(s, slot, recnum, path, sign=sign))
        self.fail_next = 0
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._segments: OrderedDict[int, bytes] = OrderedDict()
        self._keywords: dict[datetime, dict[str, Any]] = {}

    # -- test controls ----------------------------------------------------------------
    def record_at(self, series: str, when: datetime) -> Record:
        """The record of ``series`` in the slot of ``when`` (aware UTC)."""
        slot = t_rec_slot(when)
        for r in self.records[series]:
            if r.t_rec == slot:
                return r
        raise KeyError(f"{series} has no record at {jsoc_tai(slot)}")

    def set_quality(self, series: str, when: datetime, quality: int) -> None:
        """Flag a record (e.g. ``0x400``): drms clients must skip it."""
        self.record_at(series, when).quality = quality

    def drop(self, series: str, when: datetime) -> None:
        """Remove a record (not yet in the series, as the definitive one is for days)."""
        record = self.record_at(series, when)
        self.records[series].remove(record)

    def times(self, series: str = SERIES[-1]) -> list[datetime]:
        """Observation times (aware UTC) of a series' records, oldest first."""
        return [utc_aware(r.t_rec) for r in self.records[series]]

    # -- record sets ------------------------------------------------------------------
    def series_name(self, name: str) -> str:
        """The served series called ``name`` (JSOC's names are case-insensitive; drms lowers them)."""
        for series in self.records:
            if series.lower() == name.strip().lower():
                return series
        raise RecordSetError(f"series {name.strip()} does not exist")

    def select(self, ds: str) -> tuple[str, list[Record]]:
        """The series and records of record set ``ds``."""
        m = _RECORDSET.match(ds)
        if m is None:
            raise RecordSetError(f"cannot parse record set {ds!r}")
        series = self.series_name(m["series"])
        filters = re.findall(r"\[([^\]]*)\]", m["filters"])
        if len(filters) > 1:
            raise RecordSetError("only one prime-key filter (T_REC) is supported by the stand-in")
        records = self.records[series]
        if not filters or not filters[0].strip():
            return series, list(records)
        spec = filters[0].strip()
        if spec.startswith("?"):
            raise RecordSetError("SQL record filters are not supported by the stand-in")
        if spec == "$":
            return series, records[-1:]
        if "@" in spec:
            raise RecordSetError("cadence (@) is not supported by the stand-in")
        if "/" in spec:
            start_text, _, dur_text = spec.partition("/")
            d = _DURATION.match(dur_text.strip())
            if d is None:
                raise RecordSetError(f"cannot parse duration {dur_text!r}")
            start = parse_time(start_text)
            end = start + timedelta(seconds=float(d[1]) * _UNITS[d[2]])
            return series, [r for r in records if start <= r.t_rec < end]
        if re.fullmatch(f"{_TIME}-{_TIME}", spec):
            a, b = (parse_time(p) for p in re.match(f"({_TIME})-({_TIME})$", spec).groups())  # type: ignore[union-attr]
            return series, [r for r in records if a <= r.t_rec <= b]
        t = parse_time(spec)
        epoch = datetime(1993, 1, 1)
        slot = epoch + round((t - epoch) / T_REC_STEP) * T_REC_STEP
        return series, [r for r in records if r.t_rec == slot]

    def keywords(self, record: Record) -> dict[str, Any]:
        """The record's keywords (geometry computed once per slot; NRT and definitive agree)."""
        with self._lock:
            found = self._keywords.get(record.t_rec)
        if found is None:
            geom = level1_geometry(utc_aware(record.t_rec), self.naxis, seed=_seed(record.t_rec))
            found = level1_keywords(geom, record.t_rec)
            with self._lock:
                self._keywords[record.t_rec] = found
        return {**found, "QUALITY": record.quality}

    def rs_list(self, ds: str, keys: list[str], segs: list[str], n: int | None, recinfo: bool) -> dict[str, Any]:
        """The ``op=rs_list`` answer."""
        series, records = self.select(ds)
        if n is not None and n != 0:
            records = records[:n] if n > 0 else records[n:]
        cheap = {"T_REC", "T_OBS", "QUALITY"}
        out: dict[str, Any] = {}
        if keys:
            rows = [self.keywords(r) if set(keys) - cheap else _cheap_keywords(r) for r in records]
            out["keywords"] = [{"name": k, "values": [_render(k, row) for row in rows]} for k in keys]
        if segs:
            out["segments"] = [
                {"name": s, "values": [r.segment_path if s == SEGMENT else "InvalidSegName" for r in records],
                 "dims": [f"{self.naxis}x{self.naxis}" if s == SEGMENT else "" for r in records]}
                for s in segs
            ]
        if recinfo:
            out["recinfo"] = [{"name": f"{series}[{jsoc_tai(r.t_rec)}]", "online": "Y"} for r in records]
        return {**out, "count": len(records), "runtime": 0.001, "status": 0}

    def series_struct(self, ds: str) -> dict[str, Any]:
        """The ``op=series_struct`` answer."""
        series = self.series_name(ds.split("[", 1)[0])
        return {
            "note": f"{series} (synmag stand-in)", "retention": 10000, "unitsize": 32, "archive": 0,
            "tapegroup": 0, "primekeys": ["T_REC"], "dbindex": ["T_REC"], "links": [],
            "primekeysinfo": [{"name": "T_REC", "slotted": 1, "step": "720", "epoch": "1993.01.01_00:00:00_TAI"}],
            "keywords": [{"name": k, "type": t, "recscope": "variable", "defval": "", "units": "none", "note": ""}
                         for k, t in KEYWORD_TYPES.items()],
            "segments": [{"name": SEGMENT, "type": "int", "units": "Mx/cm^2", "protocol": "fits",
                          "dims": f"{self.naxis}x{self.naxis}", "note": "magnetogram"}],
            "status": 0,
        }

    def segment(self, recnum: int) -> bytes | None:
        """The raw segment of record ``recnum`` (made on first request, kept for a few)."""
        with self._lock:
            if recnum in self._segments:
                self._segments.move_to_end(recnum)
                return self._segments[recnum]
        record = next((r for rs in self.records.values() for r in rs if r.recnum == recnum), None)
        if record is None:
            return None
        from service.science.dataset import read_hmi_gauss
        from service.science.preprocess import model_disk_mask

        gauss = read_hmi_gauss(record.source) * np.float32(record.sign)
        gauss[~model_disk_mask()] = float("nan")  # the dataset's off-disk code reads as -200 G
        geom = level1_geometry(utc_aware(record.t_rec), self.naxis, seed=_seed(record.t_rec))
        data = raw_segment_bytes(level1_image(gauss, geom))
        with self._lock:
            self._segments[recnum] = data
            while len(self._segments) > _CACHE_SEGMENTS:
                self._segments.popitem(last=False)
        return data


def _seed(t_rec: datetime) -> int:
    return int(t_rec.timestamp()) % (2**32)


def _cheap_keywords(record: Record) -> dict[str, Any]:
    return {"T_REC": jsoc_tai(record.t_rec), "T_OBS": jsoc_tai(record.t_rec, 2), "QUALITY": record.quality}


def _render(key: str, row: dict[str, Any]) -> str:
    """A keyword value as JSOC's JSON gives it: always a string."""
    if key not in row:
        return "Invalid KeyLink"
    value = row[key]
    if key == "QUALITY":
        return f"0x{int(value) & 0xFFFFFFFF:08x}"
    if isinstance(value, float):
        return "NaN" if not math.isfinite(value) else f"{value:.10g}"
    return str(value)


# --------------------------------------------------------------------------- HTTP
def _names(query: dict[str, list[str]], param: str) -> list[str]:
    """A comma- or space-separated list parameter (drms joins ``key`` and ``seg`` with commas)."""
    return [p for p in re.split(r"[\s,]+", query.get(param, [""])[0]) if p]


class _Handler(BaseHTTPRequestHandler):
    server_version = "Apache/2.4.6 (jsoc stand-in)"
    protocol_version = "HTTP/1.1"
    standin: JsocStandin  # set on the subclass made by make_server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("jsoc stand-in: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            self.close_connection = True

    def _get(self) -> None:
        standin = self.standin
        with standin._lock:
            failing = standin.fail_next > 0
            standin.fail_next -= failing
        if failing:
            standin.requests["failed"] += 1
            return self._send(500, b"<html><body>Internal Server Error</body></html>", "text/html")
        url = urlsplit(self.path)
        if url.path == INFO_PATH:
            return self._info(parse_qs(url.query))
        if m := _SEGMENT_URL.match(url.path):
            standin.requests["segment"] += 1
            data = standin.segment(int(m.group(2)) - 100000)
            if data is None:
                return self._send(404, b"not found\n", "text/plain")
            return self._send(200, data, "application/octet-stream")
        return self._send(404, b"not found\n", "text/plain")

    def _info(self, query: dict[str, list[str]]) -> None:
        op = query.get("op", [""])[0]
        ds = query.get("ds", [""])[0]
        self.standin.requests[op or "unknown"] += 1
        try:
            if op == "series_struct":
                answer = self.standin.series_struct(ds)
            elif op == "rs_list":
                n_text = query.get("n", [None])[0]
                answer = self.standin.rs_list(ds, _names(query, "key"), _names(query, "seg"),
                                              int(n_text) if n_text else None, query.get("R", ["0"])[0] == "1")
            else:
                raise RecordSetError(f"op {op!r} is not served by the stand-in")
        except RecordSetError as exc:
            answer = {"status": 1, "error": str(exc)}
        return self._send(200, json.dumps(answer).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_server(standin: JsocStandin, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``standin`` (port 0: any free port)."""
    handler = type("JsocStandinHandler", (_Handler,), {"standin": standin})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(standin: JsocStandin, host: str = "127.0.0.1",
                    port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start the server in a daemon thread; returns (server, base URL, e.g. ``http://127.0.0.1:PORT``)."""
    server = make_server(standin, host, port)
    threading.Thread(target=server.serve_forever, name="synmag-jsoc-standin", daemon=True).start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"
