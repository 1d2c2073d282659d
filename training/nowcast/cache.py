"""Everything a nowcast training step needs, computed once per split and kept in one file.

The expensive parts are not learned: the H-alpha-only generator's output for each day
(0.7 s a frame on two CPU cores) and the priors (each day's HMI rotated to the later days
1..7 days after it, :func:`service.science.prior.rotate_prior`, as serving does). They
are computed at the model frame's 1024x1024 and kept block-averaged to the nowcast
head's grid (``1024 / POOL``), which is where the head learns; val additionally keeps the
generator's full-resolution output for scoring products at 1024.

The cache holds data derived from the dataset: it lives outside the repository
(``--cache``) and is never committed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from service.science import preprocess
from service.science.metrics import DiskGeometry
from service.science.prior import rotate_prior
from training.data import Day, list_webp_days, read_halpha, read_target_gauss

POOL = 8
GRID = 1024 // POOL
MAX_AGE_DAYS = 7
GEOMETRY = DiskGeometry(preprocess.MODEL_CENTER, preprocess.MODEL_RADIUS_PX)


def pool(a: np.ndarray, k: int = POOL) -> np.ndarray:
    """Mean of ``k`` x ``k`` blocks of the last two axes."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1), dtype=np.float32)


def prior_days(days: list[Day]) -> list[list[int]]:
    """For each day, the index of the day ``k`` days earlier (k = 1..7), or -1.

    Days are about 00:00 UT; a day counts as ``k`` days earlier when it lies within
    half a day of it.
    """
    mjd = np.array([d.mjd for d in days])
    out = []
    for m in mjd:
        row = []
        for k in range(1, MAX_AGE_DAYS + 1):
            j = int(np.argmin(np.abs(mjd - (m - k))))
            row.append(j if abs(mjd[j] - (m - k)) < 0.5 else -1)
        out.append(row)
    return out


def build(days: list[Day], generator_path: Path, out: Path, keep_full: bool) -> Path:
    """Compute and write the cache of ``days`` to ``out`` (``.npz``; ``.base1024.npy`` beside)."""
    from service.inference.onnx_model import OnnxGenerator

    gen = OnnxGenerator(generator_path, threads=1)
    mask = preprocess.model_disk_mask()
    n = len(days)
    x128 = np.zeros((n, GRID, GRID), np.float32)
    base128 = np.zeros_like(x128)
    y128 = np.zeros_like(x128)
    truths = []
    base_full = (np.lib.format.open_memmap(out.with_suffix(".base1024.npy"), "w+", np.float16, (n, 1024, 1024))
                 if keep_full else None)
    t0 = time.time()
    for i, day in enumerate(days):
        x = preprocess.halpha_to_model(read_halpha(day))
        base = gen.predict(x)
        truth = read_target_gauss(day)
        truths.append(truth)
        x128[i], base128[i] = pool(x), pool(np.where(mask, base, 0.0))
        y128[i] = pool(preprocess.gauss_to_model(truth))
        if base_full is not None:
            base_full[i] = base.astype(np.float16)
        if i % 20 == 0:
            print(f"{out.name}: generator {i}/{n} {time.time() - t0:.0f} s", flush=True)
    links = np.array(prior_days(days), np.int32)
    prior128 = np.zeros((n, MAX_AGE_DAYS, GRID, GRID), np.float32)
    seen128 = np.zeros_like(prior128)
    age_h = np.zeros((n, MAX_AGE_DAYS), np.float32)
    for i, day in enumerate(days):
        for k, j in enumerate(links[i]):
            if j < 0:
                continue
            field, seen = rotate_prior(truths[j], days[j].time, day.time, GEOMETRY)
            prior128[i, k] = pool(preprocess.gauss_to_model(np.nan_to_num(field, nan=0.0)))
            seen128[i, k] = pool(seen.astype(np.float32))
            age_h[i, k] = (day.mjd - days[j].mjd) * 24.0
        if i % 20 == 0:
            print(f"{out.name}: priors {i}/{n} {time.time() - t0:.0f} s", flush=True)
    np.savez(out, times=np.array([d.time for d in days]), names=np.array([d.halpha_path.name for d in days]),
             x128=x128, base128=base128, y128=y128, prior128=prior128, seen128=seen128,
             links=links, age_h=age_h, generator_sha256=gen.sha256, generator_version=gen.version)
    if base_full is not None:
        base_full.flush()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--split", required=True, choices=["train", "val"])
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    a = p.parse_args(argv)
    a.cache.mkdir(parents=True, exist_ok=True)
    build(list_webp_days(a.data_dir / a.split), a.generator, a.cache / f"{a.split}.npz", keep_full=a.split == "val")


if __name__ == "__main__":
    main()
