"""A stand-in NSO GONG archive: frames from a folder, re-stamped to now, over HTTP.

For offline use, demos and tests. The server answers in the archive's layout
(:mod:`service.sources.gong.names`): ``/HA/haf/YYYYMM/YYYYMMDD/`` is an
Apache-style index page (sort links, parent directory and JPEG previews
included, as on the real host) and ``.../YYYYMMDDhhmmss{S}h.fits.fz`` a frame.

Sources
    A folder of GONG ``.fits.fz`` frames (re-stamped: ``DATE-OBS`` rewritten,
    data recompressed losslessly), or a dataset split folder of
    ``*_halpha.webp`` images (converted with
    :func:`service.devtools.gong_writer.write_gong_frame`, so the val split is a
    real-data feed). For a dataset folder the paired HMI image is served as
    truth at ``/truth/{gong file name}.hmi.webp`` (see
    :meth:`ReplayArchive.truth_for`), and an earlier day's HMI as a prior at
    ``/prior.json?t=ISO&min_age_s=S&max_age_s=S`` (see :meth:`ReplayArchive.prior_for`;
    the image at ``/hmi/{file}?stamp=ISO``, in the stamped date's polarity as the truth
    is): what the ``replay`` magnetogram source reads.

Clock
    Replay minute ``k`` is stamped ``anchor + k`` minutes, ``anchor`` being the
    current UTC minute less ``rewind`` minutes, and is published after
    ``k * cadence`` seconds of replay (``backlog`` minutes at once at start),
    but never before its frames would exist for real (observation + ``publish_delay``).
    The defaults (cadence 60 s, no rewind) are real time; a short cadence with
    a rewind replays the recent past quickly, then continues in real time.
    Each published minute holds the next source frame of every site: for
    ``.fits.fz`` folders the sites present (one queue per site letter), for
    dataset folders the same image as each of ``sites`` (seconds apart).

Dated mode (:class:`DatedArchive`, ``synmag replay --dated [--shift-years N]``)
    No replay clock: every source frame is published at its own observation time (a
    dataset stem's, or a ``.fits.fz`` name's) moved by ``N`` whole years keeping the day of
    year, as ``synmag jsoc-standin --shift-years N`` moves the HMI days, so that an
    archive client asking for a past date (the dataset builder) finds the frame of
    that date and JSOC the magnetogram of the same minute. Truth and priors follow the
    stamped date's polarity as in replay mode.

Faults (counted over frame downloads, not listings)
    ``fail_every`` N: HTTP 500; ``truncate_every`` M: the connection drops
    halfway through the body (``Content-Length`` promises the whole file);
    ``stall_every`` K: no answer for ``stall_s`` seconds (client timeouts);
    ``short_file_every`` J: every J-th published frame is itself truncated at
    the source (served whole with a matching length: the reader must reject it);
    ``delay_s``: every request answers that much later (a slow upstream).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

from service.sources.gong.names import FRAME_NAME, day_path, frame_name, parse_name
from service.sources.gong.sites import SITES, site_by_letter

log = logging.getLogger(__name__)

SITE_LETTERS = "".join(s.letter for s in SITES)

_DAY_URL = re.compile(r"^/HA/haf/(\d{6})/(\d{8})/?$")
_FRAME_URL = re.compile(r"^/HA/haf/(\d{6})/(\d{8})/([^/]+)$")
_TRUTH_URL = re.compile(r"^/truth/([^/]+)\.hmi\.webp$")
_HMI_URL = re.compile(r"^/hmi/([^/]+_hmi\.webp)$")
# Seconds past the minute at which each site's frame is stamped (sites observe apart).
_SITE_SECOND_STEP = 20
_SITE_SECOND_FIRST = 14
_CACHE_FRAMES = 48
# The reader's generation switch (gong.py): HPLN headers from October 2024.
_HPLN_FROM = datetime(2024, 10, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SourceItem:
    """One source frame: a GONG file or a dataset H-alpha image (with its HMI truth)."""

    path: Path
    kind: str  # "fits" or "webp"
    truth: Path | None = None


@dataclass(frozen=True)
class Published:
    """A frame the stand-in archive lists."""

    name: str
    obs_time: datetime
    site_letter: str
    item: SourceItem
    index: int  # publication order, for source-side faults

    @property
    def day(self) -> date:
        return self.obs_time.date()


@dataclass
class Faults:
    fail_every: int = 0
    truncate_every: int = 0
    stall_every: int = 0
    stall_s: float = 0.0
    short_file_every: int = 0
    delay_s: float = 0.0


def scan_source(folder: Path, sites: str = "BL") -> dict[str, list[SourceItem]]:
    """Source frames per site letter, in time order.

    ``.fits.fz`` files are queued under their file-name site letter (``B`` when
    the name does not say); a dataset folder's ``*_halpha.webp`` images are
    queued under every letter of ``sites``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"replay source {folder} is not a folder")
    queues: dict[str, list[SourceItem]] = {}
    for path in sorted(folder.glob("*.fits.fz")) + sorted(folder.glob("*.fits")):
        match = FRAME_NAME.match(path.name)
        letter = match["letter"] if match else "B"
        letter = letter if letter in SITE_LETTERS else "B"
        queues.setdefault(letter, []).append(SourceItem(path, "fits"))
    webps = sorted(folder.glob("*_halpha.webp"))
    if webps:
        for letter in sites:
            if letter not in SITE_LETTERS:
                raise ValueError(f"unknown site letter {letter!r} (one of {SITE_LETTERS})")
        items = []
        for path in webps:
            truth = path.with_name(path.name.replace("_halpha.webp", "_hmi.webp"))
            items.append(SourceItem(path, "webp", truth if truth.is_file() else None))
        for letter in sites:
            queues.setdefault(letter, []).extend(items)
    if not queues:
        raise FileNotFoundError(f"no *.fits.fz frames or *_halpha.webp images in {folder}")
    return dict(sorted(queues.items()))


class ReplayArchive:
    """The published state of the stand-in archive, and the frames' bytes.

    Parameters
    ----------
    source : path
        Folder of frames (see :func:`scan_source`).
    cadence_s, publish_delay_s, rewind_minutes, backlog : see module docstring.
    faults : Faults
    sites : str
        Site letters a dataset image is published as.
    limit : int, optional
        Stop publishing after this many minutes (tests: a feed that ends).
    now : callable
        The clock (UTC), replaceable in tests.
    """

    def __init__(
        self,
        source: Path,
        *,
        cadence_s: float = 60.0,
        publish_delay_s: float = 30.0,
        rewind_minutes: int = 0,
        backlog: int = 0,
        faults: Faults | None = None,
        sites: str = "BL",
        limit: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.queues = scan_source(source, sites)
        self.cadence_s = float(cadence_s)
        self.publish_delay_s = float(publish_delay_s)
        self.backlog = int(backlog)
        self.limit = limit
        self.faults = faults or Faults()
        self._now = now
        self.started = now()
        self.anchor = self.started.replace(second=0, microsecond=0) - timedelta(minutes=rewind_minutes)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self.downloads = 0
        self.requests = 0
        self.listings = 0  # listing requests, and those answered 304 (conditional polling)
        self.not_modified = 0
        self.faults_injected: dict[str, int] = {"fail": 0, "truncate": 0, "stall": 0, "short_file": 0}

    # -- what is published ---------------------------------------------------------
    def published_count(self) -> int:
        """Replay minutes published so far (minute ``k`` for ``k < count``)."""
        now = self._now()
        by_cadence = self.backlog + 1 + math.floor((now - self.started).total_seconds() / self.cadence_s)
        # Never ahead of reality: minute k exists once its last site's frame is public.
        last_second = _SITE_SECOND_FIRST + _SITE_SECOND_STEP * (len(self.queues) - 1)
        real = (now - self.anchor - timedelta(seconds=last_second + self.publish_delay_s)).total_seconds()
        by_clock = math.floor(real / 60.0) + 1
        count = max(0, min(by_cadence, by_clock))
        return count if self.limit is None else min(count, self.limit)

    def frames_of_minute(self, k: int) -> list[Published]:
        minute = self.anchor + timedelta(minutes=k)
        out = []
        for j, (letter, queue) in enumerate(self.queues.items()):
            obs_time = minute + timedelta(seconds=(_SITE_SECOND_FIRST + _SITE_SECOND_STEP * j) % 60)
            item = queue[k % len(queue)]
            name = frame_name(obs_time, site_by_letter(letter))  # type: ignore[arg-type]
            out.append(Published(name, obs_time, letter, item, k * len(self.queues) + j))
        return out

    def published(self) -> list[Published]:
        """Every frame listed now, oldest first."""
        frames: list[Published] = []
        for k in range(self.published_count()):
            frames.extend(self.frames_of_minute(k))
        return frames

    def find(self, name: str) -> Published | None:
        """The published frame of that file name, or ``None``."""
        parsed = parse_name(name)
        if parsed is None:
            return None
        obs_time = parsed[0]
        k = int((obs_time.replace(second=0) - self.anchor).total_seconds() // 60)
        if k < 0 or k >= self.published_count():
            return None
        return next((f for f in self.frames_of_minute(k) if f.name == name), None)

    def truth_bytes(self, gong_name: str) -> bytes | None:
        """The truth of a published frame as served: the paired HMI image, in the polarity of
        the frame's stamped date (``None`` when there is none).

        The replay stamps 2014 (cycle 24) data with today's date (cycle 25), where Hale's law
        is reversed and the service negates a cycle-24 model's output; so that the drill's
        products and truth describe the same Sun, the truth is negated as well whenever the
        stamped date's cycle has the other parity from the data's own date
        (:func:`service.science.cycles.polarity_sign`). Negating this 8-bit code is exact:
        ``Gauss = v * 400 / 255 - 200``, so ``-Gauss`` is ``255 - v``.
        """
        frame = self.find(gong_name)
        if frame is None or frame.item.truth is None:
            return None
        return hmi_bytes(frame.item.truth, frame.obs_time)

    def truth_for(self, gong_name: str) -> Path | None:
        """The HMI image paired with a published frame (dataset sources), or ``None``."""
        frame = self.find(gong_name)
        return frame.item.truth if frame is not None else None

    def prior_for(self, t: datetime, min_age: timedelta, max_age: timedelta) -> tuple[Path, datetime] | None:
        """An earlier dataset day's HMI for the frame published at ``t``, and its stamped time.

        The frame of ``t``'s replay minute shows dataset day ``i``; an earlier day ``j``
        (same queue, with HMI) is stamped ``frame time - (stem_i - stem_j)``: the real
        gap between the two days. The newest stamp within ``[t - max_age, t - min_age]``
        wins; None when the minute is not published or no earlier day fits. The day's
        own HMI is never a prior (it is the truth).
        """
        k = math.floor((t - self.anchor).total_seconds() / 60.0)
        if k < 0 or k >= self.published_count():
            return None
        frame = self.frames_of_minute(k)[0]
        if frame.item.kind != "webp":
            return None
        queue = self.queues[frame.site_letter]
        i = k % len(queue)
        day_i = _dataset_time(queue[i].path)
        for item in reversed(queue[:i]):
            day_j = _dataset_time(item.path)
            if item.truth is None or day_i is None or day_j is None or day_j >= day_i:
                continue
            stamped = frame.obs_time - (day_i - day_j)
            if stamped > t - min_age:
                continue
            return (item.truth, stamped) if stamped >= t - max_age else None
        return None

    def hmi_file(self, name: str) -> Path | None:
        """A dataset HMI file of the source folder by name (a prior's image), or ``None``.

        Served as :func:`hmi_bytes` for the time the prior is stamped with (``?stamp=``),
        in that date's polarity as the truth is."""
        for queue in self.queues.values():
            for item in queue:
                if item.truth is not None and item.truth.name == name:
                    return item.truth
        return None

    # -- frame bytes ---------------------------------------------------------------
    def frame_bytes(self, frame: Published) -> bytes:
        """The frame's file, made once and kept (same bytes on every download)."""
        with self._lock:
            data = self._cache.get(frame.name)
            if data is not None:
                self._cache.move_to_end(frame.name)
                return data
        data = render_frame(frame.item, frame.obs_time, frame.site_letter, seed=frame.index)
        if self.faults.short_file_every and (frame.index + 1) % self.faults.short_file_every == 0:
            data = data[: len(data) // 2]  # broken at the source: every download gets the same stub
        with self._lock:
            self._cache[frame.name] = data
            while len(self._cache) > _CACHE_FRAMES:
                self._cache.popitem(last=False)
        return data

    def next_fault(self) -> str | None:
        """Count one download and say which fault (if any) it gets."""
        with self._lock:
            self.downloads += 1
            n = self.downloads
        f = self.faults
        for name, every in (("fail", f.fail_every), ("truncate", f.truncate_every), ("stall", f.stall_every)):
            if every and n % every == 0:
                self.faults_injected[name] += 1
                return name
        return None

    # -- listing ---------------------------------------------------------------------
    def listing_html(self, day: date) -> str | None:
        """Apache-style index of one day; ``None`` (404) for a day not started yet."""
        if day > self._now().date():
            return None
        frames = [f for f in self.published() if f.day == day]
        path = "/" + day_path(day)
        rows = [
            '<tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th>'
            '<th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th>'
            '<th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>',
            '<tr><th colspan="5"><hr></th></tr>',
            f'<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
            f'<td><a href="/HA/haf/{day:%Y%m}/">Parent Directory</a></td><td>&nbsp;</td>'
            f'<td align="right">  - </td><td>&nbsp;</td></tr>',
        ]
        for f in frames:
            modified = f.obs_time + timedelta(seconds=self.publish_delay_s)
            for name, size, icon in ((f.name, "3.1M", "unknown"), (f.name.replace(".fits.fz", ".jpg"), "180K", "image2")):
                rows.append(
                    f'<tr><td valign="top"><img src="/icons/{icon}.gif" alt="[   ]"></td>'
                    f'<td><a href="{html.escape(name)}">{html.escape(name)}</a></td>'
                    f'<td align="right">{modified:%Y-%m-%d %H:%M}  </td>'
                    f'<td align="right">{size}</td><td>&nbsp;</td></tr>'
                )
        rows.append('<tr><th colspan="5"><hr></th></tr>')
        return (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
            f"  <title>Index of {path}</title>\n </head>\n <body>\n<h1>Index of {path}</h1>\n"
            "  <table>\n   " + "\n   ".join(rows) + "\n</table>\n"
            "<address>Apache/2.4.37 (replay) Server at localhost</address>\n</body></html>\n"
        )


class DatedArchive(ReplayArchive):
    """Every source frame published at its own date moved by ``shift_years`` (see the module
    docstring's "Dated mode"), each site ``_SITE_SECOND_STEP`` s after the previous.

    A frame is listed once its stamped time plus ``publish_delay_s`` has passed (a date
    moved into the future is not there yet). Faults and the truth work as in replay mode.
    """

    def __init__(self, source: Path, *, shift_years: int = 0, publish_delay_s: float = 30.0,
                 faults: Faults | None = None, sites: str = "BL",
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        from service.devtools.jsoc_standin import shift_by_years

        super().__init__(source, publish_delay_s=publish_delay_s, faults=faults, sites=sites, now=now)
        self.shift_years = int(shift_years)
        frames: list[Published] = []
        for j, (letter, queue) in enumerate(self.queues.items()):
            for item in queue:
                own = _item_time(item)
                if own is None:
                    continue
                obs_time = shift_by_years(own, self.shift_years) + timedelta(seconds=_SITE_SECOND_STEP * j)
                name = frame_name(obs_time, site_by_letter(letter))  # type: ignore[arg-type]
                frames.append(Published(name, obs_time, letter, item, len(frames)))
        if not frames:
            raise FileNotFoundError(f"no dated frames in {source}")
        self.frames = sorted(frames, key=lambda f: (f.obs_time, f.site_letter))
        self._by_name = {f.name: f for f in self.frames}

    def published(self) -> list[Published]:
        cutoff = self._now() - timedelta(seconds=self.publish_delay_s)
        return [f for f in self.frames if f.obs_time <= cutoff]

    def published_count(self) -> int:
        return len(self.published())

    def find(self, name: str) -> Published | None:
        frame = self._by_name.get(name)
        if frame is None or frame.obs_time > self._now() - timedelta(seconds=self.publish_delay_s):
            return None
        return frame

    def prior_for(self, t: datetime, min_age: timedelta, max_age: timedelta) -> tuple[Path, datetime] | None:
        """The newest dataset HMI whose stamped time lies in ``[t - max_age, t - min_age]``."""
        found = None
        for frame in self.published():
            if frame.item.truth is not None and t - max_age <= frame.obs_time <= t - min_age:
                found = (frame.item.truth, frame.obs_time)
        return found


def _item_time(item: SourceItem) -> datetime | None:
    """A source frame's own observation time: the dataset stem's, or the GONG file name's."""
    if item.kind == "webp":
        return _dataset_time(item.path)
    parsed = parse_name(item.path.name)
    return parsed[0] if parsed is not None else None


def _dataset_time(path: Path) -> datetime | None:
    """The dataset stem's time (``2014-03-19T00_00_54_halpha.webp``), or None."""
    try:
        return datetime.strptime(path.name[:19], "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def truth_sign(frame: Published) -> int:
    """+1, or -1 when the frame's stamped date is of the other Hale parity than its data's date."""
    from service.science.cycles import cycle_of, polarity_sign
    from service.science.dataset import pair_time

    if frame.item.kind != "webp":
        return 1
    return polarity_sign(frame.obs_time, cycle_of(pair_time(frame.item.path)))


def hmi_bytes(path: Path, stamped: datetime) -> bytes:
    """A dataset HMI file as served when stamped ``stamped``: in that date's polarity.

    See :meth:`ReplayArchive.truth_bytes`: negated (``255 - v``, exact) when the stamped
    date's cycle has the other Hale parity from the data's own date.
    """
    from service.science.cycles import cycle_of, polarity_sign
    from service.science.dataset import pair_time

    raw = path.read_bytes()
    if polarity_sign(stamped, cycle_of(pair_time(path))) == 1:
        return raw
    from PIL import Image

    from service.science.dataset import read_hmi_u8

    buf = io.BytesIO()
    Image.fromarray(255 - read_hmi_u8(io.BytesIO(raw))).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def render_frame(item: SourceItem, obs_time: datetime, site_letter: str, seed: int = 0) -> bytes:
    """The source frame as a GONG ``.fits.fz`` observed at ``obs_time`` by ``site_letter``."""
    stamp = obs_time.strftime("%Y-%m-%dT%H:%M:%S")
    written = (obs_time + timedelta(seconds=40)).strftime("%Y-%m-%dT%H:%M:%S")
    if item.kind == "webp":
        from service.devtools.gong_writer import write_gong_frame
        from service.science.dataset import read_halpha_u8

        generation = "hpln" if obs_time >= _HPLN_FROM else "gongx"
        return write_gong_frame(  # type: ignore[return-value]
            read_halpha_u8(item.path), stamp, site_letter, generation, None,
            rng=seed, header_overrides={"DATE": written, "IRAF-TLM": written},
        )
    return restamp_fits(item.path.read_bytes(), obs_time, site_letter)


def restamp_fits(data: bytes, obs_time: datetime, site_letter: str) -> bytes:
    """A GONG file with ``DATE-OBS`` (and the site) rewritten; data recompressed losslessly."""
    from astropy.io import fits

    stamp = obs_time.strftime("%Y-%m-%dT%H:%M:%S")
    with fits.open(io.BytesIO(data)) as hdul:
        hdus = []
        for hdu in hdul:
            if isinstance(hdu, fits.CompImageHDU):
                header = hdu.header.copy()
                header["DATE-OBS"] = stamp
                if "TIME-OBS" in header:
                    header["TIME-OBS"] = obs_time.strftime("%H:%M:%S")
                if "SITENAME" in header:
                    header["SITENAME"] = site_by_letter(site_letter).code  # type: ignore[union-attr]
                hdus.append(fits.CompImageHDU(data=hdu.data, header=header, compression_type="RICE_1"))
            else:
                hdus.append(hdu.copy())
        buf = io.BytesIO()
        fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server_version = "Apache/2.4.37"
    protocol_version = "HTTP/1.1"
    archive: ReplayArchive  # set on the subclass made by make_server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("replay: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout, truncation)
            self.close_connection = True

    def _get(self) -> None:
        archive = self.archive
        archive.requests += 1
        if archive.faults.delay_s:
            time.sleep(archive.faults.delay_s)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/healthz"):
            return self._send(200, b"synmag replay archive\n", "text/plain")
        if m := _DAY_URL.match(path):
            try:
                day = datetime.strptime(m.group(2), "%Y%m%d").date()
            except ValueError:
                return self._send(404, b"not found\n", "text/plain")
            page = archive.listing_html(day) if m.group(1) == m.group(2)[:6] else None
            if page is None:
                return self._send(404, b"not found\n", "text/plain")
            body = page.encode()
            etag = '"' + hashlib.sha1(body).hexdigest() + '"'
            archive.listings += 1
            if self.headers.get("If-None-Match") == etag:  # conditional polling: nothing new
                archive.not_modified += 1
                return self._send(304, b"", "text/html;charset=UTF-8", {"ETag": etag})
            return self._send(200, body, "text/html;charset=UTF-8", {"ETag": etag})
        if m := _FRAME_URL.match(path):
            frame = archive.find(m.group(3))
            if frame is None or f"{frame.obs_time:%Y%m}" != m.group(1) or f"{frame.obs_time:%Y%m%d}" != m.group(2):
                return self._send(404, b"not found\n", "text/plain")
            fault = archive.next_fault()
            if fault == "fail":
                return self._send(500, b"internal server error (injected)\n", "text/plain")
            if fault == "stall":
                time.sleep(archive.faults.stall_s)
            data = archive.frame_bytes(frame)
            if fault == "truncate":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            return self._send(200, data, "application/octet-stream")
        if m := _TRUTH_URL.match(path):
            truth = archive.truth_bytes(m.group(1))
            if truth is None:
                return self._send(404, b"no truth for this frame\n", "text/plain")
            return self._send(200, truth, "image/webp")
        if path == "/prior.json":
            return self._prior()
        if m := _HMI_URL.match(path):
            hmi = archive.hmi_file(m.group(1))
            if hmi is None:
                return self._send(404, b"no such HMI file\n", "text/plain")
            try:
                stamp = datetime.fromisoformat(parse_qs(self.path.partition("?")[2])["stamp"][0])
                if stamp.tzinfo is None:
                    raise ValueError("stamp must be aware")
            except (KeyError, ValueError) as exc:
                return self._send(400, f"bad stamp: {exc}\n".encode(), "text/plain")
            return self._send(200, hmi_bytes(hmi, stamp.astimezone(UTC)), "image/webp")
        return self._send(404, b"not found\n", "text/plain")

    def _prior(self) -> None:
        query = parse_qs(self.path.partition("?")[2])
        try:
            t = datetime.fromisoformat(query["t"][0])
            min_age = timedelta(seconds=float(query.get("min_age_s", ["0"])[0]))
            max_age = timedelta(seconds=float(query.get("max_age_s", [str(7 * 86400)])[0]))
            if t.tzinfo is None or min_age < timedelta(0) or max_age < min_age:
                raise ValueError("t must be aware, 0 <= min_age_s <= max_age_s")
        except (KeyError, ValueError, OverflowError) as exc:
            return self._send(400, f"bad prior query: {exc}\n".encode(), "text/plain")
        found = self.archive.prior_for(t.astimezone(UTC), min_age, max_age)
        if found is None:
            return self._send(404, b"no earlier HMI in that window\n", "text/plain")
        hmi, stamped = found
        body = {"obs_time": stamped.isoformat(), "file": hmi.name,
                "url": f"/hmi/{quote(hmi.name)}?{urlencode({'stamp': stamped.isoformat()})}",
                "age_s": (t.astimezone(UTC) - stamped).total_seconds()}
        return self._send(200, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """A client that hangs up (a timeout, a truncation drill) is routine here, not a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("replay: client %s went away", client_address)
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def make_server(archive: ReplayArchive, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``archive`` (port 0: any free port; see ``server.server_address``)."""
    handler = type("ReplayHandler", (_Handler,), {"archive": archive})
    server = _Server((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(archive: ReplayArchive, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start the server in a daemon thread; returns (server, base URL)."""
    server = make_server(archive, host, port)
    thread = threading.Thread(target=server.serve_forever, name="synmag-replay", daemon=True)
    thread.start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"
