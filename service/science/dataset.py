"""Readers for the Ha2Mag training data (1024x1024 8-bit WebP pairs).

Files are ``{split}/{YYYY-MM-DDTHH_MM_SS}_halpha.webp`` and ``..._hmi.webp``; the stem is
the GONG observation time (UTC). Both images are greyscale stored as RGB with three equal
channels; Pillow's ``convert("L")`` folds them back exactly. Off-disk pixels are 0.

Measured geometry (val split, 10 days): disk centre (512.0, 512.0) 0-based, +-0.05 px;
the edge of the non-zero region is a circle of radius 451.0 px (fit to the row edges,
:func:`fit_disk`); the equal-area radius of the non-zero pixels is 450.6 px (a few limb
pixels are 0). The H-alpha images keep their limb darkening (median 205 at the centre,
186 at r = 0.8, 170 at 0.9, 147 at 0.95 R).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

__all__ = [
    "HMI_GAUSS_PER_STEP",
    "Pair",
    "disk_mask",
    "fit_disk",
    "list_pairs",
    "pair_time",
    "read_halpha_u8",
    "read_hmi_gauss",
    "read_hmi_u8",
]

IMAGE_SHAPE = (1024, 1024)
HMI_GAUSS_PER_STEP = 400.0 / 255.0  # Gauss = value * 400 / 255 - 200
HMI_GAUSS_OFFSET = -200.0


def _read_u8(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.uint8)
    if arr.shape != IMAGE_SHAPE:
        raise ValueError(f"{path}: image is {arr.shape}, expected {IMAGE_SHAPE}")
    return arr


def read_halpha_u8(path: str | Path) -> np.ndarray:
    """H-alpha image on the dataset's 0..255 scale, uint8 (1024, 1024), 0 off disk."""
    return _read_u8(path)


def read_hmi_u8(path: str | Path) -> np.ndarray:
    """HMI magnetogram as stored, uint8 (1024, 1024)."""
    return _read_u8(path)


def read_hmi_gauss(path: str | Path) -> np.ndarray:
    """HMI line-of-sight field in Gauss, float32 (1024, 1024), clipped to +-200 G.

    Off-disk pixels decode to -200 G (code 0): use :func:`disk_mask`, not the value.
    """
    v = read_hmi_u8(path).astype(np.float32)
    return (v * np.float32(HMI_GAUSS_PER_STEP) + np.float32(HMI_GAUSS_OFFSET)).astype(np.float32)


def disk_mask(
    shape: tuple[int, int], center: tuple[float, float], radius: float
) -> np.ndarray:
    """Boolean mask of pixels whose centre lies within ``radius`` of ``center`` (x, y), 0-based."""
    ny, nx = shape
    y = np.arange(ny, dtype=np.float64)[:, None] - center[1]
    x = np.arange(nx, dtype=np.float64)[None, :] - center[0]
    return (x * x + y * y) <= radius * radius


def fit_disk(image: np.ndarray, threshold: float = 0.0) -> tuple[float, float, float]:
    """Fit a circle to the edge of the region ``image > threshold``.

    Each row's first and last on-disk pixel give two edge points (at the pixel's outer
    edge, +-0.5); a linear least-squares circle fit gives (cx, cy, radius), 0-based
    pixels. Exact to ~0.01 px on an ideal disk; robust to dark features inside the disk.

    Raises
    ------
    ValueError
        If fewer than 10 rows hold on-disk pixels.
    """
    m = np.asarray(image) > threshold
    rows = np.nonzero(m.any(axis=1))[0]
    if rows.size < 10:
        raise ValueError("no disk found")
    sub = m[rows]
    x0 = sub.argmax(axis=1).astype(np.float64) - 0.5
    x1 = (m.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)).astype(np.float64) + 0.5
    x = np.concatenate([x0, x1])
    y = np.concatenate([rows, rows]).astype(np.float64)
    a = np.column_stack([2 * x, 2 * y, np.ones_like(x)])
    (cx, cy, c), *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    return float(cx), float(cy), float(np.sqrt(c + cx * cx + cy * cy))


@dataclass(frozen=True)
class Pair:
    """One day of the dataset: observation time and the two image paths."""

    time: Time
    halpha_path: Path
    hmi_path: Path


def pair_time(path: str | Path) -> Time:
    """Observation time (UTC) of a dataset file from its name.

    ``2014-03-19T00_00_54_halpha.webp`` (or ``_hmi.webp``, or the bare stem) -> Time.
    """
    stem = Path(path).name.split("_halpha")[0].split("_hmi")[0]
    date, _, clock = stem.partition("T")
    return Time(f"{date}T{clock.replace('_', ':')}", format="isot", scale="utc")


def list_pairs(split_dir: str | Path) -> list[Pair]:
    """Every (H-alpha, HMI) pair in a split folder, sorted by time; unpaired files skipped."""
    split_dir = Path(split_dir)
    pairs = []
    for ha in split_dir.glob("*_halpha.webp"):
        hmi = ha.with_name(ha.name.replace("_halpha.webp", "_hmi.webp"))
        if not hmi.is_file():
            continue
        pairs.append(Pair(pair_time(ha), ha, hmi))
    pairs.sort(key=lambda p: p.time.unix)
    return pairs
