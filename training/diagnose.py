"""``synmag-train diagnose``: where an ONNX model's r_bin8 is lost, beside rotated persistence.

For every val day both the model's product and the rotated-persistence baseline are split
by :func:`service.science.metrics.r_bin8_split` into field magnitude and location
(``unsigned``), polarity (``own_sign``) and what perfect polarity would give
(``true_sign``). The means over the days say which of the two a next model must improve
to pass rotated persistence. A diagnostic: two of its values use the truth, so it never
selects or gates a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from service.inference.onnx_model import OnnxGenerator
from service.science import preprocess
from service.science.metrics import r_bin8_split
from training.evaluate import load_valset

SPLIT_KEYS = ("signed", "unsigned", "own_sign", "true_sign")


def diagnose(model: str | Path, data_dir: str | Path, eval_days: int = 0) -> dict[str, Any]:
    """Mean ``r_bin8_split`` over val days of ``model`` (ONNX) and of rotated persistence."""
    valset = load_valset(data_dir, eval_days)
    generator = OnnxGenerator(model)
    mask = preprocess.model_disk_mask()
    rows: dict[str, list[dict[str, float]]] = {"model": [], "persistence": []}
    for day, persistence in zip(valset.days, valset.baseline_preds["persistence"], strict=True):
        product = preprocess.model_to_gauss(generator.predict(day.x))
        rows["model"].append(r_bin8_split(product, day.truth, mask))
        rows["persistence"].append(r_bin8_split(persistence, day.truth, mask))
    return {
        "version": generator.version,
        "n_days": len(valset.days),
        **{name: {k: float(np.nanmean([r[k] for r in split])) for k in SPLIT_KEYS}
           for name, split in rows.items()},
    }
