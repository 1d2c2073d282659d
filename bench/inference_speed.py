"""Inference time of the shipped model (``models/*.onnx``) on one 1024x1024 frame.

Through ONNX Runtime with the providers of ``SYNMAG_PROVIDERS`` (CPU by default), the
way the service runs it. Goal: well inside the one-minute cadence; the number that
matters operationally is the ratio to 10 s (a sixth of the minute).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL_S = 10.0


def run() -> dict[str, Any]:
    from service.inference.onnx_model import OnnxGenerator
    from service.settings import load_settings

    settings = load_settings()
    models = sorted(Path(settings.bundled_model_dir).glob("*.onnx"))
    if not models:
        return {"skipped": f"no bundled model in {settings.bundled_model_dir}"}
    model = OnnxGenerator.from_settings(models[0], settings)
    x = np.random.default_rng(0).uniform(-1, 1, (1024, 1024)).astype(np.float32)
    model.predict(x)  # warm-up: first run allocates and plans
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "model": models[0].name,
        "size_mb": round(models[0].stat().st_size / 2**20, 2),
        "providers": model.active_providers,
        "cpu_count": os.cpu_count(),
        "best_s": round(best, 3),
        "median_s": round(float(np.median(times)), 3),
        "ratio": round(best / GOAL_S, 3),
    }
