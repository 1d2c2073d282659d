"""The Ha2Mag dataset's HMI images as magnetograms: from a folder, or from the replay archive.

The dataset's ``*_hmi.webp`` are already in the model frame (co-aligned with the
H-alpha by the dataset's authors), so no prep is needed. ``dir`` reads a folder
(``SYNMAG_TRUTH_DIR``, the nearest stem time within :data:`MAX_OFFSET`); ``replay`` asks
the replay archive (``SYNMAG_TRUTH_URL``) for the image paired with a published frame:
``GET {url}/truth/{frame file name}.hmi.webp`` (404: none).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import RetryableError, UsageError
from service.sources.magnetograms.base import Magnetogram, MagnetogramSource
from service.sources.registry import magnetogram_source

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["DatasetFolderSource", "ReplayTruthSource"]

# Dataset stems are the GONG frame's time; the HMI image is of the same minute.
MAX_OFFSET = timedelta(minutes=30)


def _stem_time(stem: str) -> datetime | None:
    try:
        return datetime.strptime(stem[:19], "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)
    except ValueError:
        return None


@magnetogram_source
class DatasetFolderSource(MagnetogramSource):
    """``{YYYY-MM-DDTHH_MM_SS}_hmi.webp`` files of a folder, matched by the nearest time."""

    name = "dir"

    def __init__(self, root: str | Path, max_offset: timedelta = MAX_OFFSET) -> None:
        self.root = Path(root)
        self.max_offset = max_offset
        self._index: list[tuple[datetime, Path]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetFolderSource:
        if settings.truth_dir is None:
            raise UsageError("SYNMAG_TRUTH_SOURCE=dir needs SYNMAG_TRUTH_DIR")
        return cls(settings.truth_dir)

    def _files(self) -> list[tuple[datetime, Path]]:
        if self._index is None:
            found = ((_stem_time(p.name), p) for p in sorted(self.root.glob("*_hmi.webp")))
            self._index = [(t, p) for t, p in found if t is not None]
        return self._index

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        from service.science.dataset import read_hmi_gauss

        files = self._files()
        if not files:
            return None
        t, path = min(files, key=lambda tp: abs(tp[0] - obs_time))
        if abs(t - obs_time) > self.max_offset:
            return None
        return Magnetogram(read_hmi_gauss(path), None, True,
                           {"source": "dataset", "file": path.name, "t_obs": t.isoformat()})


@magnetogram_source
class ReplayTruthSource(MagnetogramSource):
    """The replay archive's truth: the dataset HMI image paired with a published frame."""

    name = "replay"

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayTruthSource:
        if not settings.truth_url:
            raise UsageError("SYNMAG_TRUTH_SOURCE=replay needs SYNMAG_TRUTH_URL (the replay archive's root)")
        return cls(settings.truth_url, timeout=settings.http_timeout_s)

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        import httpx

        from service.science.dataset import read_hmi_gauss

        if not input_file:
            return None
        url = f"{self.base_url}/truth/{input_file}.hmi.webp"
        try:
            res = httpx.get(url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise RetryableError(f"truth {url}: {exc}") from exc
        if res.status_code == 404:
            return None
        if res.status_code != 200:
            raise RetryableError(f"truth {url}: HTTP {res.status_code}")
        return Magnetogram(read_hmi_gauss(io.BytesIO(res.content)), None, True, {"source": "replay", "url": url})
