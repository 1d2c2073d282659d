"""The manifest of a built folder: ``DIR/manifest.json``, rewritten atomically after every step.

::

    {"format": "synmag-dataset/1",
     "request": {start, end, hour, every_s, sites, gong_url, jsoc_url, series, window_s, ...},
     "preprocess_version": "1",
     "steps": {"2025-03-19T00:00:00+00:00": STEP, ...},
     "split": {"train": [pair files], "val": [...], "test": [...], "dropped": [...],
               "gap_days": 27, "error": null},
     "updated": ISO}

A STEP is ``{"status": "pair", "pair": FILE, "pair_sha256", "offset_s", "halpha": {...},
"hmi": {...}}`` or ``{"status": "skipped", "reason": WHY, "detail", "retry": bool, "rejected":
[...]}``. ``halpha``: the input file's name, url, sha256, site, obs_time, the gate's verdict,
the reader's disk fit and the intensity map; ``hmi``: series, T_REC, T_OBS, QUALITY, sha256,
url and the WCS disk; ``rejected``: the frames tried and why each was refused.
A step is done when it has a pair whose file exists, or a skip that is not ``retry``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.dataset.pairs import atomic_write

__all__ = ["FORMAT", "Manifest"]

FORMAT = "synmag-dataset/1"
NAME = "manifest.json"


class Manifest:
    """A built folder's manifest (see the module docstring)."""

    def __init__(self, folder: Path, data: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.data: dict[str, Any] = data or {"format": FORMAT, "steps": {}, "split": {}}

    @property
    def path(self) -> Path:
        return self.folder / NAME

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """The folder's manifest, or a new empty one."""
        path = Path(folder) / NAME
        if not path.is_file():
            return cls(Path(folder))
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
        return cls(Path(folder), data)

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("steps", {})

    def done(self, key: str, retry_skipped: bool = False) -> bool:
        """Whether step ``key`` needs no work: its pair exists, or it was skipped for good."""
        step = self.steps.get(key)
        if step is None:
            return False
        if step.get("status") == "pair":
            return (self.folder / step["pair"]).is_file()
        return not (step.get("retry") or retry_skipped)

    def pairs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(key, step)`` of every step with a pair file on disk, in time order."""
        return sorted(((k, s) for k, s in self.steps.items()
                       if s.get("status") == "pair" and (self.folder / s["pair"]).is_file()),
                      key=lambda ks: ks[1]["halpha"]["obs_time"])

    def save(self) -> None:
        self.data["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write(self.path, (json.dumps(self.data, indent=1, sort_keys=True, default=_plain) + "\n").encode())


def _plain(value: Any) -> Any:
    """numpy scalars and other odd values as JSON."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
