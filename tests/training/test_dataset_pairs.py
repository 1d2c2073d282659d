"""Pair files (atomic, unclipped) and the chronological splits with 27-day gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from training.dataset import splits
from training.dataset.pairs import atomic_write, pair_name, pair_time, read_pair, write_pair

T = datetime(2025, 3, 19, 0, 0, 54, tzinfo=UTC)


def test_a_pair_reads_back_unclipped_with_its_header(tmp_path: Path) -> None:
    gauss = np.full((64, 64), 2500.0, np.float32)
    gauss[0, 0] = np.nan
    gauss[1, 1] = -3100.0
    halpha = np.linspace(0, 255, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = tmp_path / pair_name(T)
    write_pair(path, halpha, gauss, {"DATE-OBS": "2025-03-19T00:00:54", "HA_FILE": "x.fits.fz"})
    pair = read_pair(path)
    assert path.name == "2025-03-19T00_00_54_pair.fits" and pair_time(path) == T == pair.obs_time
    assert np.array_equal(pair.halpha, halpha) and np.array_equal(pair.gauss, gauss, equal_nan=True)
    assert pair.header["HA_FILE"] == "x.fits.fz"


def test_a_write_that_fails_midway_keeps_the_old_file_and_no_temporary(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.fits"
    atomic_write(target, b"old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.fits"]


def _times(n: int, step_days: float = 1.0) -> list[datetime]:
    return [T + timedelta(days=step_days * i) for i in range(n)]


def test_splits_are_in_time_order_with_a_rotation_between_them() -> None:
    times = _times(200)
    labels = splits.assign(times)
    by = {k: [t for t, lab in zip(times, labels, strict=True) if lab == k] for k in ("train", "val", "test")}
    assert all(by.values()) and len(by["train"]) > len(by["val"])
    assert (by["val"][0] - by["train"][-1]).days >= 27 and (by["test"][0] - by["val"][-1]).days >= 27
    splits.check_gaps(by)


def test_splits_refuse_a_span_shorter_than_two_rotations() -> None:
    with pytest.raises(ValueError, match="cannot hold train, val and test"):
        splits.assign(_times(50))


def test_check_gaps_catches_splits_too_close() -> None:
    with pytest.raises(ValueError, match="train ends 10.0 days before val"):
        splits.check_gaps({"train": _times(5), "val": [T + timedelta(days=14)]})
