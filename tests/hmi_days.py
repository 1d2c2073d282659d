"""Synthetic dataset days (``*_hmi.webp`` in the Ha2Mag coding) for magnetogram tests without real data.

Each day is a model-frame field: a bipole whose position encodes the day (so a test can
tell which day it got) on a quiet 0 G disk, written as the dataset writes HMI (Gauss =
value * 400 / 255 - 200, lossless WebP, 0 off the disk).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from service.science.preprocess import MODEL_CENTER, model_disk_mask

T0 = datetime(2014, 3, 19, 0, 0, 54, tzinfo=UTC)


def bipole_field(day: int) -> np.ndarray:
    """Gauss, model frame: +150 G / -150 G blobs 40 px apart, 30 px further west each day."""
    field = np.zeros((1024, 1024), np.float32)
    x0 = int(MODEL_CENTER[0]) - 200 + 30 * day
    y0 = int(MODEL_CENTER[1]) + 60
    field[y0:y0 + 16, x0:x0 + 16] = 150.0
    field[y0:y0 + 16, x0 + 40:x0 + 56] = -150.0
    return field


def encode(field: np.ndarray) -> np.ndarray:
    """Gauss -> the dataset's uint8 code (1..255 on the disk, 0 off it)."""
    code = np.clip(np.rint((np.clip(field, -200, 200) + 200.0) * 255.0 / 400.0), 1, 255).astype(np.uint8)
    code[~model_disk_mask()] = 0
    return code


def write_days(folder: Path, n: int, start: datetime = T0, step: timedelta = timedelta(days=1),
               jitter_s: int = 0) -> list[datetime]:
    """``n`` days of ``{stem}_hmi.webp`` (and a blank ``_halpha.webp`` beside each); their times."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    times = []
    for day in range(n):
        t = start + day * step + timedelta(seconds=(day * jitter_s) % 60)
        stem = t.strftime("%Y-%m-%dT%H_%M_%S")
        Image.fromarray(encode(bipole_field(day))).save(folder / f"{stem}_hmi.webp", "WEBP", lossless=True)
        halpha = np.where(model_disk_mask(), 190, 0).astype(np.uint8)
        Image.fromarray(halpha).save(folder / f"{stem}_halpha.webp", "WEBP", lossless=True)
        times.append(t)
    return times


def blob_center(gauss: np.ndarray, sign: float = 1.0) -> tuple[float, float]:
    """(x, y) centroid of the pixels above 75 G (of ``sign``) in a map."""
    field = np.where(np.isfinite(gauss), gauss * sign, 0.0)
    ys, xs = np.nonzero(field > 75.0)
    w = field[ys, xs]
    return float(np.dot(xs, w) / w.sum()), float(np.dot(ys, w) / w.sum())
