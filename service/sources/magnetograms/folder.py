"""``dir``: magnetograms from a folder of files (``SYNMAG_TRUTH_DIR``, ``--prior-dir``).

FITS files (``*.fits``, ``*.fits.fz``, ``*.fts``): HMI level 1 as JSOC exports it
(keywords in the header, image in a RICE extension, CROTA2 about 180) or level-1.5
maps (CROTA2 0, any size), each read through its WCS (:mod:`.files`). Dataset
``*_hmi.webp``: already in the model frame. The folder is indexed by observation time
from the headers alone (no image is decompressed to index) and indexed again when it
changes; a file that cannot be used is left out with its reason in :attr:`skipped`.
The last few files read are kept, so a feed asking every minute reads each file once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import UsageError
from service.sources.magnetograms.base import (
    TRUTH_MAX_OFFSET,
    Magnetogram,
    MagnetogramRejected,
    MagnetogramSource,
    age_window,
    aware_utc,
)
from service.sources.magnetograms.files import (
    check_header,
    read_fits,
    read_header,
    read_webp,
    stem_time,
)
from service.sources.registry import magnetogram_source

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["FolderSource"]

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fits.fz", ".fts", ".fit")
WEBP_SUFFIX = "_hmi.webp"
_CACHE_FILES = 3


@dataclass(frozen=True)
class Entry:
    obs_time: datetime
    path: Path
    kind: str  # "fits" or "webp"


@magnetogram_source
class FolderSource(MagnetogramSource):
    """Magnetogram files of one folder, found by observation time.

    Parameters
    ----------
    root : path
        The folder (not searched recursively).
    max_offset : timedelta
        :meth:`nearest` takes a file observed within this of the time asked.
    """

    name = "dir"

    def __init__(self, root: str | Path, max_offset: timedelta = TRUTH_MAX_OFFSET) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UsageError(f"magnetogram folder {self.root} is not a folder")
        self.max_offset = max_offset
        self.skipped: dict[str, str] = {}
        self._index: list[Entry] = []
        self._stamp: tuple[int, int] | None = None
        self._cache: OrderedDict[tuple[Path, int], Magnetogram] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> FolderSource:
        if settings.truth_dir is None:
            raise UsageError("SYNMAG_TRUTH_SOURCE=dir needs SYNMAG_TRUTH_DIR")
        return cls(settings.truth_dir)

    # -- index ------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Usable files, oldest first (indexed again when the folder changes)."""
        st = self.root.stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._index, self.skipped = self._scan()
                self._stamp = stamp
            return self._index

    def _scan(self) -> tuple[list[Entry], dict[str, str]]:
        found: list[Entry] = []
        skipped: dict[str, str] = {}
        for path in sorted(self.root.iterdir()):
            name = path.name
            try:
                if name.endswith(WEBP_SUFFIX):
                    t = stem_time(name)
                    if t is None:
                        skipped[name] = "no_time: no YYYY-MM-DDTHH_MM_SS stem"
                        continue
                    found.append(Entry(t, path, "webp"))
                elif name.lower().endswith(FITS_SUFFIXES):
                    header, shape = read_header(path)
                    found.append(Entry(check_header(header, shape), path, "fits"))
            except MagnetogramRejected as exc:
                skipped[name] = str(exc)
        for name, why in skipped.items():
            log.info("magnetogram folder %s: %s left out (%s)", self.root, name, why)
        return sorted(found, key=lambda e: e.obs_time), skipped

    def read(self, entry: Entry) -> Magnetogram:
        """The file of ``entry`` as a magnetogram (kept for the next few calls)."""
        key = (entry.path, entry.path.stat().st_mtime_ns)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        data = entry.path.read_bytes()
        m = read_webp(data, entry.path.name) if entry.kind == "webp" else read_fits(data, entry.path.name)
        m.meta["source"] = self.name
        with self._lock:
            self._cache[key] = m
            while len(self._cache) > _CACHE_FILES:
                self._cache.popitem(last=False)
        return m

    # -- lookups ----------------------------------------------------------------------
    def _first_readable(self, entries: list[Entry]) -> Magnetogram | None:
        """The first of ``entries`` that reads (a file broken past its header is left out for good)."""
        for entry in entries:
            try:
                return self.read(entry)
            except MagnetogramRejected as exc:
                self.skipped[entry.path.name] = str(exc)
                with self._lock:
                    self._index = [e for e in self._index if e.path != entry.path]
                log.warning("magnetogram folder %s: %s left out (%s)", self.root, entry.path.name, exc)
        return None

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        obs_time = aware_utc(obs_time)
        near = [e for e in self.entries() if abs(e.obs_time - obs_time) <= self.max_offset]
        return self._first_readable(sorted(near, key=lambda e: abs(e.obs_time - obs_time)))

    def newest_before(self, t: datetime, min_age: timedelta, max_age: timedelta) -> Magnetogram | None:
        lo, hi = age_window(t, min_age, max_age)
        inside = [e for e in self.entries() if lo <= e.obs_time <= hi]
        return self._first_readable(inside[::-1])
