"""The GONG H-alpha archive at NSO as a frame source: listings, downloads, the reader.

Frames appear about 30-80 s after their observation time in one Apache-style listing
per UTC day (:mod:`.names`); listings carry other links too (sort links, the parent
directory, JPEG previews), which the file-name grammar filters out. HTTP is
:class:`~service.sources.http.UpstreamHttp` (classified errors, capped jittered retries).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from service.science.frame import HalphaFrame
from service.settings import Settings
from service.sources.base import Download, FrameSource, RemoteFrame
from service.sources.gong.names import day_path, parse_name
from service.sources.gong.reader import read_gong
from service.sources.http import UpstreamHttp
from service.sources.registry import frame_source

__all__ = ["GongArchive", "parse_listing", "remote_frame"]

SOURCE = "gong"
_HREF = re.compile(r"""href\s*=\s*["']([^"'#?]+)["']""", re.IGNORECASE)
# Near 00 UT the previous day's directory still receives frames.
YESTERDAY_MARGIN = timedelta(minutes=10)
# A day that is over is listed again this seldom (late additions, just in case).
CLOSED_DAY_RELIST = timedelta(minutes=10)


def remote_frame(name: str, base_url: str) -> RemoteFrame | None:
    """The listed frame of file name ``name`` under ``base_url``; None for links that are not frames."""
    parsed = parse_name(name)
    if parsed is None:
        return None
    obs_time, site = parsed
    url = f"{base_url.rstrip('/')}/{day_path(obs_time.date())}{name}"
    return RemoteFrame(source=SOURCE, name=name, url=url, obs_time=obs_time, site=site.code)


def parse_listing(html: str, base_url: str) -> list[RemoteFrame]:
    """Frames named in an Apache-style index page, sorted by time then site."""
    frames = {}
    for href in _HREF.findall(html):
        name = href.rsplit("/", 1)[-1]
        frame = remote_frame(name, base_url)
        if frame is not None:
            frames[name] = frame
    return sorted(frames.values(), key=lambda f: (f.obs_time, f.site))


@frame_source
class GongArchive(FrameSource):
    """The NSO GONG H-alpha archive (one per process).

    Parameters
    ----------
    settings : Settings
        ``gong_base_url`` and the ``http_*`` timeouts, retries and backoff.
    sleep : callable, optional
        Replaced in tests to observe backoff without waiting.
    """

    name = SOURCE

    def __init__(self, settings: Settings, sleep: Callable[[float], None] | None = None) -> None:
        self.base_url = settings.gong_base_url.rstrip("/")
        self.http = UpstreamHttp(settings, "synmag (GONG H-alpha to synthetic magnetogram)", sleep)
        self._closed_days: dict[date, tuple[float, list[RemoteFrame]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> GongArchive:
        return cls(settings)

    def close(self) -> None:
        self.http.close()

    def abort(self) -> None:
        self.http.abort()

    def __enter__(self) -> GongArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_day(self, day: date, deadline: float | None = None) -> list[RemoteFrame]:
        """Frames in one UTC day's directory; a missing directory (404) is empty.

        Listings are polled every tick, so they are conditional GETs (a 304 when unchanged).
        A day that is over (no frame can still arrive: :data:`YESTERDAY_MARGIN` after its end)
        is listed again at most every :data:`CLOSED_DAY_RELIST`: the catch-up window reaching
        into yesterday costs no second listing a poll.
        """
        from service.errors import SkipError

        closed = datetime.now(UTC) - YESTERDAY_MARGIN > datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)
        kept = self._closed_days.get(day)
        if closed and kept is not None and time.monotonic() - kept[0] < CLOSED_DAY_RELIST.total_seconds():
            return kept[1]
        try:
            body = self.http.get(f"{self.base_url}/{day_path(day)}", deadline, conditional=True)
        except SkipError:
            return []
        frames = parse_listing(body.decode("utf-8", errors="replace"), self.base_url)
        if closed:
            self._closed_days = {d: v for d, v in self._closed_days.items() if d >= day - timedelta(days=2)}
            self._closed_days[day] = (time.monotonic(), frames)
        return frames

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
        return sorted(frames, key=lambda f: (f.obs_time, f.site))

    def download(self, frame: RemoteFrame, deadline: float | None = None) -> Download:
        """Fetch one frame and hash it."""
        start = time.monotonic()
        data = self.http.get(frame.url, deadline)
        return Download(frame=frame, data=data, sha256=hashlib.sha256(data).hexdigest(),
                        seconds=time.monotonic() - start)

    def remote(self, name: str) -> RemoteFrame | None:
        return remote_frame(name, self.base_url)

    @classmethod
    def read(cls, data: bytes, name: str | None = None) -> HalphaFrame:
        return read_gong(data, filename=name)
