"""``synmag-train dataset build``: GONG H-alpha + HMI pairs from the archives, resumable.

For each step (``--start`` .. ``--end`` inclusive, at ``--hour``, every ``--every``):

1. list the GONG frames within ``window`` of the step's time (the feed's archive client,
   :class:`service.sources.gong.archive.GongArchive`, any ``--sites``);
2. try them a minute at a time, nearest minute first: download, read, gate
   (:func:`service.science.quality.gate` with the service's thresholds) and preprocess
   (:func:`service.science.preprocess.preprocess`); of one minute's accepted frames the best
   gate score wins, ties to the earlier, as in the feed; at most ``max_frames`` downloads;
3. the ``hmi.M_720s`` record nearest that frame within 6 min with QUALITY 0 (verification's
   JSOC source, :class:`service.sources.magnetograms.jsoc.JsocSource`), into the model frame
   by :func:`service.verification.prep.to_model_frame`, unclipped;
4. write the pair (:mod:`.pairs`, atomic) and the step's manifest entry (:mod:`.manifest`,
   atomic), or the reason the step was skipped.

Resumable and idempotent: every download is kept under ``DIR/raw/`` by name
(``raw/gong/YYYYMMDD/<GONG file>``, ``raw/jsoc/<series>/<T_REC>.json`` for the record's
keywords and ``.magnetogram.fits`` for its segment) and read from there on a rerun; a step
with its pair on disk, or skipped for a lasting reason, is not touched again (upstream errors
are retried on the next run, other skips with ``retry_skipped``). A kill at any moment loses
at most the step in progress. Requests are spaced by at least ``min_interval_s``.
At the end the splits (:mod:`.splits`) are computed over all pairs and written to the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from service.errors import FatalError, FrameRejected, RetryableError, SkipError
from service.science import preprocess
from service.science.dataset import fit_disk
from service.science.quality import Thresholds, gate
from service.sources.base import RemoteFrame
from service.sources.gong.archive import GongArchive
from service.sources.gong.sites import SITES, site_by_code, site_by_letter
from service.sources.magnetograms.base import MagnetogramRejected
from service.sources.magnetograms.files import image_disk
from service.sources.magnetograms.jsoc import JsocSource
from training.dataset import splits
from training.dataset.manifest import Manifest, _plain
from training.dataset.pairs import atomic_write, pair_name, write_pair

__all__ = ["BuildRequest", "build", "parse_every", "parse_sites"]

# The definitive series, QUALITY 0: training wants settled data, not the near-real-time one.
SERIES = ("hmi.M_720s",)


# ---------------------------------------------------------------------------
# the request
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildRequest:
    """What to build (see the module docstring).

    ``start`` and ``end`` are dates, both included; ``hour`` and ``minute`` the UTC time of
    each step; ``sites`` station codes (None: all six).
    """

    start: date
    end: date
    gong_url: str
    jsoc_url: str
    hour: int = 0
    minute: int = 0
    every: timedelta = timedelta(days=1)
    sites: tuple[str, ...] | None = None
    window: timedelta = timedelta(minutes=30)
    max_frames: int = 6
    min_interval_s: float = 1.0
    retry_skipped: bool = False

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"--end {self.end} is before --start {self.start}")
        if not (0 <= self.hour < 24 and 0 <= self.minute < 60):
            raise ValueError(f"--hour {self.hour}:{self.minute:02d} is not a time of day")
        if self.every < timedelta(minutes=1):
            raise ValueError("--every must be at least a minute")
        if self.max_frames < 1 or self.min_interval_s < 0:
            raise ValueError("max_frames >= 1 and min_interval_s >= 0")

    def steps(self) -> list[datetime]:
        t = datetime.combine(self.start, datetime.min.time(), UTC).replace(hour=self.hour, minute=self.minute)
        last = datetime.combine(self.end, datetime.max.time(), UTC)
        out = []
        while t <= last:
            out.append(t)
            t += self.every
        return out

    def describe(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "hour": f"{self.hour:02d}:{self.minute:02d}", "every_s": self.every.total_seconds(),
                "sites": list(self.sites) if self.sites else None, "gong_url": self.gong_url,
                "jsoc_url": self.jsoc_url, "series": list(SERIES), "window_s": self.window.total_seconds(),
                "max_frames": self.max_frames, "min_interval_s": self.min_interval_s}


def parse_every(text: str) -> timedelta:
    """``1d``, ``12h``, ``90m`` -> timedelta."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", text)
    if m is None:
        raise ValueError(f"--every {text!r}: expected e.g. 1d, 12h, 90m")
    return timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[m[2]]: float(m[1])})


def parse_sites(text: str | None) -> tuple[str, ...] | None:
    """``BB,LE`` or ``B,L`` (codes or file-name letters) -> station codes; None/empty: all."""
    if not text:
        return None
    codes = []
    for part in re.split(r"[\s,]+", text.strip()):
        site = site_by_code(part) or site_by_letter(part)
        if site is None:
            raise ValueError(f"unknown GONG site {part!r} (one of {', '.join(s.code for s in SITES)})")
        codes.append(site.code)
    return tuple(codes)


# ---------------------------------------------------------------------------
# HTTP economy: spacing and the raw cache
# ---------------------------------------------------------------------------
class Throttle:
    """At least ``min_interval_s`` between the starts of two requests (all clients together)."""

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.min_interval_s
        if delay > 0:
            time.sleep(delay)


class _Http:
    """An ``UpstreamHttp`` spaced by the throttle, with URLs that have a raw-cache file read from it."""

    def __init__(self, inner: Any, throttle: Throttle, counts: Counter[str], kind: str) -> None:
        self.inner, self.throttle, self.counts, self.kind = inner, throttle, counts, kind
        self.files: dict[str, Path] = {}

    def get(self, url: str, deadline: float | None = None, **kw: Any) -> bytes:
        path = self.files.get(url)
        if path is not None and path.is_file():
            self.counts[f"{self.kind}_cached"] += 1
            return path.read_bytes()
        self.throttle.wait()
        data = self.inner.get(url, deadline, **kw)
        self.counts[f"{self.kind}_requests"] += 1
        if path is not None:
            atomic_write(path, data)
            self.counts[f"{self.kind}_downloaded_bytes"] += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


class DatasetJsoc(JsocSource):
    """Verification's JSOC source with its record queries and segments kept in ``raw/jsoc/``."""

    def __init__(self, base_url: str, http: Any, raw: Path, throttle: Throttle, counts: Counter[str]) -> None:
        super().__init__(base_url, _Http(http, throttle, counts, "jsoc"), series=SERIES)
        self.raw, self.throttle, self.counts = raw, throttle, counts

    def _record_path(self, ds: str, suffix: str) -> Path:
        series, _, t_rec = ds.partition("[")
        return self.raw / _safe(series) / (_safe(t_rec.rstrip("]")) + suffix)

    def query(self, ds: str, keys: tuple[str, ...], segment: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
        if not segment:  # listings: what exists may change, always asked
            return super().query(ds, keys, segment)
        cached = self._record_path(ds, ".json")
        if cached.is_file():
            self.counts["jsoc_cached"] += 1
            got = json.loads(cached.read_text())
            rows, paths = got["rows"], got["paths"]
        else:
            rows, paths = super().query(ds, keys, segment)
            atomic_write(cached, json.dumps({"ds": ds, "rows": rows, "paths": paths}, default=_plain).encode())
        for p in paths:  # the segment's URL as fetch builds it -> its file beside the keywords
            url = p if p.startswith("http") else f"{self.base_url}/{p.lstrip('/')}"
            self.http.files[url] = self._record_path(ds, ".magnetogram.fits")
        return rows, paths

    def _query_once(self, ds: str, keys: tuple[str, ...], segment: bool) -> tuple[list[dict[str, Any]], list[str]]:
        self.throttle.wait()
        self.counts["jsoc_requests"] += 1
        return super()._query_once(ds, keys, segment)


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------
class Progress:
    """``[#####.....] 12/30  pairs 10  skipped 2  1m02s  ETA 1m40s`` on stderr (one line per
    step when it is not a terminal). The ETA counts only steps worked on in this run."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.start = time.monotonic()
        self.done = 0
        self.worked = 0
        self.tty = stream.isatty()

    def step(self, worked: bool, counts: Counter[str], label: str) -> None:
        self.done += 1
        self.worked += worked
        elapsed = time.monotonic() - self.start
        left = self.total - self.done
        eta = elapsed / self.worked * left if self.worked else 0.0
        filled = int(self.width * self.done / max(1, self.total))
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}  "
                f"pairs {counts['pair']}  skipped {counts['skipped']}  {_clock(elapsed)}  ETA {_clock(eta)}  {label}")
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
            if left == 0:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ---------------------------------------------------------------------------
# one step
# ---------------------------------------------------------------------------
class _Skip(Exception):
    def __init__(self, reason: str, detail: str = "", rejected: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.rejected = reason, detail, rejected or []


@dataclass
class Builder:
    """The loop's state: clients, cache folders, counters (see :func:`build`)."""

    request: BuildRequest
    out: Path
    settings: Any
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        from service.sources.http import UpstreamHttp

        self.raw = self.out / "raw"
        self.throttle = Throttle(self.request.min_interval_s)
        self.thresholds = Thresholds.from_settings(self.settings)
        self.gong = GongArchive(self.settings)
        self.gong.http = _Http(self.gong.http, self.throttle, self.counts, "gong")
        segment_http = UpstreamHttp(self.settings.model_copy(update={"http_timeout_s": self.settings.jsoc_timeout_s}),
                                    "synmag-dataset (training pairs)")
        self.jsoc = DatasetJsoc(self.settings.jsoc_url, segment_http, self.raw / "jsoc", self.throttle, self.counts)

    def close(self) -> None:
        self.gong.close()
        self.jsoc.close()

    # -- H-alpha ------------------------------------------------------------------------
    def candidates(self, t: datetime) -> list[list[RemoteFrame]]:
        """Listed frames within the window, grouped by minute, nearest minute first."""
        lo, hi = t - self.request.window, t + self.request.window
        frames: list[RemoteFrame] = []
        day = lo.date()
        while day <= hi.date():
            frames += [f for f in self.gong.list_day(day) if lo <= f.obs_time <= hi
                       and (self.request.sites is None or f.site in self.request.sites)]
            day += timedelta(days=1)
        minutes: dict[datetime, list[RemoteFrame]] = {}
        for f in sorted(frames, key=lambda f: (f.obs_time, f.site)):
            minutes.setdefault(f.minute, []).append(f)
        return [minutes[m] for m in sorted(minutes, key=lambda m: (abs((m - t).total_seconds()), m))]

    def gong_bytes(self, remote: RemoteFrame) -> bytes:
        path = self.raw / "gong" / f"{remote.obs_time:%Y%m%d}" / remote.name
        if path.is_file():
            self.counts["gong_cached"] += 1
            return path.read_bytes()
        data = self.gong.download(remote).data
        atomic_write(path, data)
        self.counts["gong_downloaded_bytes"] += len(data)
        return data

    def choose_frame(self, t: datetime) -> tuple[Any, ...]:
        """(remote, bytes, frame, verdict, model input) of the step's frame, and the frames refused."""
        groups = self.candidates(t)
        if not groups:
            raise _Skip("no_frames", f"no GONG frame listed within {self.request.window} of {t:%Y-%m-%d %H:%M}")
        rejected: list[dict[str, Any]] = []
        tried = 0
        for group in groups:
            accepted = []
            for remote in group:
                if tried >= self.request.max_frames:
                    break
                tried += 1
                try:
                    data = self.gong_bytes(remote)
                except SkipError as exc:  # listed, then gone
                    rejected.append({"file": remote.name, "reasons": ["not_found"], "detail": str(exc)})
                    continue
                sha = hashlib.sha256(data).hexdigest()
                try:
                    frame = GongArchive.read(data, remote.name)
                    verdict = gate(frame, self.thresholds)
                    if not verdict.accepted:
                        rejected.append({"file": remote.name, "sha256": sha, "reasons": list(verdict.reasons),
                                         "gate": verdict.as_dict()})
                        continue
                    model_input = preprocess.preprocess(frame)
                except FrameRejected as exc:
                    rejected.append({"file": remote.name, "sha256": sha, "reasons": [str(exc.reason)],
                                     "detail": exc.detail})
                    continue
                accepted.append((remote, data, sha, frame, verdict, model_input))
            if accepted:  # best gate score of the minute, ties to the earlier frame (as the feed)
                best = max(accepted, key=lambda a: (a[4].score, -a[0].obs_time.timestamp()))
                return best, rejected
            if tried >= self.request.max_frames:
                break
        raise _Skip("no_usable_frame", f"{tried} frame(s) tried, none passed the gate", rejected)

    # -- the step -----------------------------------------------------------------------
    def step(self, t: datetime) -> dict[str, Any]:
        from service.verification.prep import to_model_frame

        (remote, _, sha, frame, verdict, model_input), rejected = self.choose_frame(t)
        obs_time = frame.obs_time.utc.to_datetime(timezone=UTC)
        try:
            magnetogram = self.jsoc.nearest(obs_time)
        except MagnetogramRejected as exc:
            raise _Skip("no_hmi", str(exc), rejected) from exc
        if magnetogram is None:
            raise _Skip("no_hmi", f"no {'/'.join(SERIES)} record with QUALITY 0 within 6 min of "
                        f"{obs_time:%Y-%m-%d %H:%M:%S}", rejected)
        gauss, _ = to_model_frame(magnetogram)
        halpha = preprocess.model_to_halpha(model_input.image)
        halpha[~model_input.mask] = 0.0
        offset_s = (magnetogram.obs_time - obs_time).total_seconds()
        name = pair_name(obs_time)
        header = {"DATE-OBS": obs_time.strftime("%Y-%m-%dT%H:%M:%S"), "HA_FILE": remote.name, "HA_SHA": sha[:64],
                  "HA_SITE": remote.site, "HMI_ORIG": magnetogram.origin, "HMI_SHA": magnetogram.sha256[:64],
                  "HMI_TOBS": magnetogram.obs_time.strftime("%Y-%m-%dT%H:%M:%S"), "OFFSET_S": round(offset_s, 1),
                  "PREPVER": preprocess.PREPROCESS_VERSION}
        pair_sha = write_pair(self.out / name, halpha, np.array(gauss), header)
        hmi_disk = image_disk(magnetogram.header, magnetogram.data.shape) if magnetogram.header else None
        cx, cy, r = fit_disk(halpha)
        return {
            "status": "pair", "pair": name, "pair_sha256": pair_sha, "offset_s": offset_s,
            "halpha": {
                "file": remote.name, "url": remote.url, "sha256": sha, "site": remote.site,
                "obs_time": obs_time.isoformat(), "gate": verdict.as_dict(),
                "disk": {"center_px": list(frame.center_px), "radius_px": frame.radius_px,
                         "radius_minmax_px": list(frame.radius_minmax_px),
                         "rsun_arcsec": float(frame.rsun_arcsec.to_value("arcsec"))},
                "model_disk_fit": {"center_px": [cx, cy], "radius_px": r},
                "intensity": model_input.intensity,
            },
            "hmi": {**magnetogram.describe(),
                    "disk": None if hmi_disk is None else {"center_px": list(hmi_disk.center_px),
                                                           "radius_px": hmi_disk.radius_px,
                                                           "rotation_deg": hmi_disk.rotation_deg}},
            "max_abs_gauss": float(np.nanmax(np.abs(gauss))),
            "rejected": rejected,
        }


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------
def build(request: BuildRequest, out: str | Path, settings: Any = None, *, progress: TextIO | None = sys.stderr,
          on_step: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Build (or complete) the folder ``out``; returns the summary (also in the manifest).

    ``settings`` gives the HTTP timeouts, retries and gate thresholds (default: the
    environment's, with the request's archive URLs).
    """
    from service.settings import load_settings

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(".*.tmp"), *(out / "raw").glob("**/.*.tmp")]:  # a killed run's unfinished writes
        stale.unlink(missing_ok=True)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
    overrides = {"gong_base_url": request.gong_url, "jsoc_url": request.jsoc_url}
    settings = load_settings(**overrides) if settings is None else settings.model_copy(update=overrides)
    manifest = Manifest.load(out)
    manifest.data["request"] = request.describe()
    manifest.data["preprocess_version"] = preprocess.PREPROCESS_VERSION
    builder = Builder(request, out, settings)
    steps = request.steps()
    bar = Progress(len(steps), progress) if progress is not None else None
    tally: Counter[str] = Counter()
    t0 = time.monotonic()
    try:
        for t in steps:
            key = t.isoformat()
            if manifest.done(key, request.retry_skipped):
                tally["already_" + manifest.steps[key]["status"]] += 1
                tally[manifest.steps[key]["status"]] += 1
                if bar:
                    bar.step(False, tally, f"{t:%Y-%m-%d} done before")
                continue
            started = time.monotonic()
            try:
                entry = builder.step(t)
            except _Skip as skip:
                entry = {"status": "skipped", "reason": skip.reason, "detail": skip.detail, "retry": False,
                         "rejected": skip.rejected}
            except (RetryableError, FatalError) as exc:  # the archive failed us: try again next run
                entry = {"status": "skipped", "reason": "upstream_error", "detail": str(exc), "retry": True}
            entry["target_time"] = key
            entry["seconds"] = round(time.monotonic() - started, 2)
            manifest.steps[key] = entry
            manifest.save()
            tally[entry["status"]] += 1
            if entry["status"] == "skipped":
                tally["skipped:" + entry["reason"]] += 1
            if on_step is not None:
                on_step(key, entry)
            if bar:
                bar.step(True, tally, f"{t:%Y-%m-%d} {entry.get('pair') or entry.get('reason')}")
    finally:
        builder.close()
    manifest.data["split"] = compute_split(manifest)
    summary = {
        "steps": len(steps), "pairs": tally["pair"], "pairs_new": tally["pair"] - tally["already_pair"],
        "skipped": {k.removeprefix("skipped:"): v for k, v in sorted(tally.items()) if k.startswith("skipped:")},
        "skipped_before": tally["already_skipped"],
        "http": {k: v for k, v in sorted(builder.counts.items())},
        "split": {k: len(manifest.data["split"][k]) for k in ("train", "val", "test", "dropped")},
        "split_error": manifest.data["split"].get("error"),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    manifest.data["summary"] = summary
    manifest.save()
    return summary


def compute_split(manifest: Manifest) -> dict[str, Any]:
    """Train / val / test over every pair of the folder (:func:`.splits.assign`)."""
    pairs = manifest.pairs()
    times = [datetime.fromisoformat(s["halpha"]["obs_time"]) for _, s in pairs]
    out: dict[str, Any] = {"train": [], "val": [], "test": [], "dropped": [], "gap_days": splits.GAP_DAYS,
                           "fractions": list(splits.FRACTIONS), "error": None}
    try:
        labels = splits.assign(times)
    except ValueError as exc:
        out["error"] = str(exc)
        return out
    for (_, step), label in zip(pairs, labels, strict=True):
        out[label or "dropped"].append(step["pair"])
    return out


def summary_text(summary: dict[str, Any], out: Path) -> str:
    """The summary as a few lines for a person."""
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    http = summary["http"]
    lines = [
        f"dataset {out}: {summary['pairs']} pairs of {summary['steps']} steps "
        f"({summary['pairs_new']} new this run); skipped this run: {skipped}; skipped earlier: {summary['skipped_before']}",
        f"requests: GONG {http.get('gong_requests', 0)} ({http.get('gong_downloaded_bytes', 0) / 1e6:.1f} MB new, "
        f"{http.get('gong_cached', 0)} from raw/), JSOC {http.get('jsoc_requests', 0)} "
        f"({http.get('jsoc_downloaded_bytes', 0) / 1e6:.1f} MB new, {http.get('jsoc_cached', 0)} from raw/); "
        f"{summary['wall_s']:.0f} s",
        ("split: " + ", ".join(f"{k} {v}" for k, v in summary["split"].items()) if not summary["split_error"]
         else f"split: none ({summary['split_error']})"),
    ]
    return "\n".join(lines)
