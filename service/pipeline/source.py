"""Client of the NSO GONG H-alpha archive: day listings and frame downloads.

The archive's layout, written once here::

    {base}/HA/haf/YYYYMM/YYYYMMDD/YYYYMMDDhhmmss{S}h.fits.fz

with ``S`` the site letter (B C L M T U). One plain Apache-style directory
listing per UTC day holds every site's frames; listings carry other links
(sort links, the parent directory, JPEG previews) that the name pattern filters
out. Frames appear about 30-80 s after their observation time.

HTTP failures are classified: 404 is :class:`~service.errors.SkipError` (the
frame is not there), 5xx, timeouts, dropped connections and short bodies are
:class:`~service.errors.RetryableError` (retried here with capped, jittered
exponential backoff, raised once the retries are spent) and any other 4xx is
:class:`~service.errors.FatalError`. The upstream can take 15-20 s a request:
every request has a timeout and every call a deadline, so a tick never hangs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx

from service import observability as obs
from service.errors import FatalError, RetryableError, SkipError
from service.settings import Settings

log = logging.getLogger(__name__)

SITE_LETTERS = "BCLMTU"
# Two-letter SITENAME per file-name letter (Big Bear, Cerro Tololo, Learmonth,
# Mauna Loa, El Teide, Udaipur).
SITE_NAMES = {"B": "BB", "C": "CT", "L": "LE", "M": "ML", "T": "TD", "U": "UD"}
FRAME_NAME = re.compile(r"^(\d{14})([BCLMTU])h\.fits\.fz$")
_HREF = re.compile(r"""href\s*=\s*["']([^"'#?]+)["']""", re.IGNORECASE)
# Near 00 UT the previous day's directory still receives frames.
YESTERDAY_MARGIN = timedelta(minutes=10)


def day_path(day: date) -> str:
    """Archive path of one UTC day's directory, without the base URL."""
    return f"HA/haf/{day:%Y%m}/{day:%Y%m%d}/"


def frame_name(obs_time: datetime, site_letter: str) -> str:
    """File name of the frame a site observed at ``obs_time`` (UTC)."""
    return f"{obs_time:%Y%m%d%H%M%S}{site_letter}h.fits.fz"


@dataclass(frozen=True)
class RemoteFrame:
    """One frame listed in the archive."""

    name: str
    url: str
    obs_time: datetime  # UTC, from the file name
    site_letter: str

    @property
    def site(self) -> str:
        """Two-letter site name (SITENAME)."""
        return SITE_NAMES[self.site_letter]

    @property
    def minute(self) -> datetime:
        """Observation minute (UTC, seconds dropped): the key a product is made for."""
        return self.obs_time.replace(second=0, microsecond=0)

    @classmethod
    def from_name(cls, name: str, base_url: str) -> RemoteFrame | None:
        """Parse a listed name; ``None`` for links that are not frames."""
        match = FRAME_NAME.match(name)
        if match is None:
            return None
        try:
            obs_time = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:  # 14 digits but not a date (e.g. month 13)
            return None
        url = f"{base_url.rstrip('/')}/{day_path(obs_time.date())}{name}"
        return cls(name=name, url=url, obs_time=obs_time, site_letter=match.group(2))


@dataclass(frozen=True)
class Download:
    """The verified bytes of one frame."""

    frame: RemoteFrame
    data: bytes
    sha256: str
    seconds: float


def parse_listing(html: str, base_url: str) -> list[RemoteFrame]:
    """Frames named in an Apache-style index page, sorted by time then site."""
    frames = {}
    for href in _HREF.findall(html):
        name = href.rsplit("/", 1)[-1]
        frame = RemoteFrame.from_name(name, base_url)
        if frame is not None:
            frames[name] = frame
    return sorted(frames.values(), key=lambda f: (f.obs_time, f.site_letter))


class GongArchive:
    """HTTP client of the archive (one per process; thread-safe for sequential use).

    Parameters
    ----------
    settings : Settings
        Base URL, timeouts, retry count and backoff.
    sleep : callable, optional
        Replaced in tests to observe backoff without waiting. By default the backoff
        waits on an event that :meth:`abort` sets, so a stopping service does not sit
        out a retry schedule.
    """

    def __init__(self, settings: Settings, sleep: Callable[[float], None] | None = None) -> None:
        self.base_url = settings.gong_base_url.rstrip("/")
        self.retries = settings.http_retries
        self.backoff_base = settings.http_backoff_base_s
        self.backoff_cap = settings.http_backoff_cap_s
        self.timeout = settings.http_timeout_s
        self._aborted = threading.Event()
        self._sleep = sleep or self._aborted.wait
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            follow_redirects=True,
            headers={"User-Agent": "synmag (GONG H-alpha to synthetic magnetogram)"},
        )

    def close(self) -> None:
        self._client.close()

    def abort(self) -> None:
        """Stop retrying: a backoff in progress ends now and no further attempt is made."""
        self._aborted.set()

    def __enter__(self) -> GongArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listing --------------------------------------------------------------
    def list_day(self, day: date, deadline: float | None = None) -> list[RemoteFrame]:
        """Frames in one UTC day's directory; a missing directory (404) is empty."""
        url = f"{self.base_url}/{day_path(day)}"
        try:
            body = self._get(url, deadline)
        except SkipError:
            return []
        return parse_listing(body.decode("utf-8", errors="replace"), self.base_url)

    def list_recent(self, now: datetime, since: datetime, deadline: float | None = None) -> list[RemoteFrame]:
        """Frames observed in ``[since, now]``: today's listing, and earlier days' the window reaches."""
        days = []
        day = (since - YESTERDAY_MARGIN).date()
        while day <= now.date():
            days.append(day)
            day += timedelta(days=1)
        frames: list[RemoteFrame] = []
        for day in reversed(days):  # today first: the newest minutes matter most
            frames.extend(f for f in self.list_day(day, deadline) if since <= f.obs_time <= now)
        return sorted(frames, key=lambda f: (f.obs_time, f.site_letter))

    # -- download ---------------------------------------------------------------
    def download(self, frame: RemoteFrame, deadline: float | None = None) -> Download:
        """Fetch one frame, check its size, and hash it."""
        start = time.monotonic()
        data = self._get(frame.url, deadline)
        return Download(
            frame=frame,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            seconds=time.monotonic() - start,
        )

    # -- HTTP with classification and retries ----------------------------------
    def _get(self, url: str, deadline: float | None) -> bytes:
        attempt = 0
        while True:
            try:
                return self._get_once(url, deadline)
            except RetryableError as exc:
                attempt += 1
                delay = self._backoff(attempt)
                late = deadline is not None and time.monotonic() + delay >= deadline
                if attempt > self.retries or late or self._aborted.is_set():
                    raise RetryableError(f"{url}: gave up after {attempt} attempt(s): {exc}") from exc
                log.info("retrying %s in %.1f s (attempt %d): %s", url, delay, attempt, exc)
                self._sleep(delay)
                if self._aborted.is_set():
                    raise RetryableError(f"{url}: stopped while retrying: {exc}") from exc

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with "equal jitter": uniform in [ceiling / 2, ceiling]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _get_once(self, url: str, deadline: float | None = None) -> bytes:
        # httpx's timeouts bound each read, so a server dripping a byte a second would hold
        # the tick for as long as it likes: the whole request gets http_timeout_s (or less,
        # up to the caller's deadline), checked as the body arrives.
        limit = time.monotonic() + self.timeout
        if deadline is not None:
            limit = min(limit, deadline)
        try:
            with self._client.stream("GET", url) as response:
                self._check_status(response.status_code, url)
                chunks = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > limit:
                        obs.upstream_errors_total.labels(kind="timeout").inc()
                        raise RetryableError(
                            f"timeout: {url} still sending after {self.timeout:g} s "
                            f"({sum(map(len, chunks))} bytes so far)"
                        )
                data = b"".join(chunks)
        except httpx.TimeoutException as exc:
            obs.upstream_errors_total.labels(kind="timeout").inc()
            raise RetryableError(f"timeout: {exc!r}") from exc
        except httpx.RemoteProtocolError as exc:  # connection dropped mid-body: a truncated download
            obs.upstream_errors_total.labels(kind="truncated").inc()
            raise RetryableError(f"truncated: {exc}") from exc
        except httpx.TransportError as exc:
            obs.upstream_errors_total.labels(kind="connection").inc()
            raise RetryableError(f"connection: {exc!r}") from exc
        expected = response.headers.get("content-length")
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if expected is not None and not encoded and int(expected) != len(data):
            obs.upstream_errors_total.labels(kind="truncated").inc()
            raise RetryableError(f"truncated: {len(data)} of {expected} bytes from {url}")
        return data

    @staticmethod
    def _check_status(status: int, url: str) -> None:
        """404 -> skip; 5xx and 429 -> retry; other 4xx -> fatal (our request is wrong)."""
        if status == 404:
            obs.upstream_errors_total.labels(kind="not_found").inc()
            raise SkipError(f"404 not found: {url}")
        if status >= 500 or status == 429:
            obs.upstream_errors_total.labels(kind="http_5xx").inc()
            raise RetryableError(f"HTTP {status} from {url}")
        if status >= 400:
            obs.upstream_errors_total.labels(kind="http_4xx").inc()
            raise FatalError(f"HTTP {status} from {url}")
