"""``replay``: the replay archive's HMI (``synmag replay`` of a dataset split), for drills.

The replay archive (:mod:`service.devtools.replay`) publishes dataset H-alpha images as
GONG frames re-stamped to now and serves their HMI:

``GET {url}/truth/{frame file name}.hmi.webp``
    the HMI paired with a published frame (verification's truth), observed at the
    frame's replay time (which its GONG file name says);
``GET {url}/prior.json?t=ISO&min_age_s=S&max_age_s=S``
    the newest HMI of an earlier dataset day observed in ``[t - max_age, t - min_age]``,
    stamped with the real gap between the two dataset days before the replay time of
    the frame published at ``t`` (the nowcast's prior, persistence):
    ``{"obs_time", "file", "url", "age_s"}``; the image itself is at ``url``
    (``/hmi/{file}?stamp=ISO``), fetched once per file and stamp.

Like the frames, both are in the polarity of the date they are stamped with (the replay
negates 2014 data stamped into cycle 25).

Both answer 404 when there is none.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from service.errors import RetryableError, SkipError, UsageError
from service.sources.magnetograms.base import Magnetogram, MagnetogramSource, age_window, aware_utc
from service.sources.magnetograms.files import read_webp
from service.sources.registry import magnetogram_source

if TYPE_CHECKING:
    from service.settings import Settings
    from service.sources.http import UpstreamHttp

__all__ = ["ReplaySource"]

_CACHE = 3


@magnetogram_source
class ReplaySource(MagnetogramSource):
    """The replay archive's HMI over HTTP (``SYNMAG_TRUTH_URL``)."""

    name = "replay"

    def __init__(self, base_url: str, http: UpstreamHttp) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._cache: OrderedDict[tuple[str, datetime], Magnetogram] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplaySource:
        from service.sources.http import UpstreamHttp

        if not settings.truth_url:
            raise UsageError("SYNMAG_TRUTH_SOURCE=replay needs SYNMAG_TRUTH_URL (the replay archive's root)")
        return cls(settings.truth_url, UpstreamHttp(settings, "synmag-replay-hmi"))

    def abort(self) -> None:
        self.http.abort()

    def close(self) -> None:
        self.http.close()

    def _image(self, url: str, obs_time: datetime, file: str) -> Magnetogram | None:
        key = (url, obs_time)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            body = self.http.get(url)
        except SkipError:  # 404: the archive has none
            return None
        m = read_webp(body, file, obs_time=obs_time)
        m.meta.update({"source": self.name, "url": url})
        with self._lock:
            self._cache[key] = m
            while len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        return m

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        from service.sources.gong.names import parse_name

        parsed = parse_name(input_file) if input_file else None
        if parsed is None:  # the replay pairs HMI with its own published frames only
            return None
        return self._image(f"{self.base_url}/truth/{quote(input_file)}.hmi.webp", parsed[0], input_file)

    def newest_before(self, t: datetime, min_age: timedelta, max_age: timedelta) -> Magnetogram | None:
        age_window(t, min_age, max_age)  # checks the arguments
        query = urlencode({"t": t.isoformat(), "min_age_s": str(min_age.total_seconds()),
                           "max_age_s": str(max_age.total_seconds())})
        url = f"{self.base_url}/prior.json?{query}"
        try:
            found = json.loads(self.http.get(url))
        except SkipError:
            return None
        except ValueError as exc:
            raise RetryableError(f"{url}: not JSON ({exc})") from exc
        try:
            obs_time = aware_utc(datetime.fromisoformat(found["obs_time"]))
            file, path = str(found["file"]), str(found["url"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RetryableError(f"{url}: answer without an aware obs_time, a file and a url: {found}") from exc
        return self._image(f"{self.base_url}/{path.lstrip('/')}", obs_time, file)
