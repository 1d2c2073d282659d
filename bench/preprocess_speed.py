"""Per-stage time of one frame: read a GONG .fits.fz, preprocess, write product FITS + PNG.

Uses a synthetic frame (no data needed). Goal: preprocess < 0.5 s on one core.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

GOAL_PREPROCESS_S = 0.5


def _best(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run() -> dict[str, Any]:
    from service.devtools.gong_writer import synthetic_disk, write_gong_frame
    from service.science.preprocess import postprocess, preprocess
    from service.science.product import product_fits_bytes, quicklook_png_bytes
    from service.sources.gong.reader import read_gong

    raw = write_gong_frame(synthetic_disk(rng=0), "2024-02-16T00:00:02", "B", "hpln", None, rng=1)
    t_read, frame = _best(lambda: read_gong(raw, filename="20240216000002Bh.fits.fz"))
    t_pre, model_input = _best(lambda: preprocess(frame))
    gauss = postprocess(np.zeros((1024, 1024), np.float32), model_input.geometry)
    provenance = {"input_file": "x.fits.fz", "model_version": "bench"}
    t_fits, _ = _best(lambda: product_fits_bytes(gauss, model_input.geometry, provenance))
    t_png, _ = _best(lambda: quicklook_png_bytes(gauss, title="bench"))
    return {
        "read_s": round(t_read, 3),
        "preprocess_s": round(t_pre, 3),
        "write_fits_s": round(t_fits, 3),
        "write_png_s": round(t_png, 3),
        "ratio": round(t_pre / GOAL_PREPROCESS_S, 2),
    }
