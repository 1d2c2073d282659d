"""``synmag-train diagnose``: where an ONNX model's r_bin8 is lost, and its grid artefacts.

For every val day both the model's product and the rotated-persistence baseline are split
by :func:`service.science.metrics.r_bin8_split` into field magnitude and location
(``unsigned``), polarity (``own_sign``) and what perfect polarity would give
(``true_sign``). The means over the days say which of the two a next model must improve
to pass rotated persistence. A diagnostic: two of its values use the truth, so it never
selects or gates a model.

``lattice_g`` measures the checkerboard that stride-2 transposed convolutions leave: the
quiet-Sun pixels (|HMI| < 50 G) of every day are folded onto a P x P cell (pixel
``(y mod P, x mod P)``), and the standard deviation of the cell's mean is reported in
Gauss. Structure tied to the Sun averages out over positions and days; structure tied
to the pixel grid does not. HMI's own value is given beside it as the floor.
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
LATTICE_PERIODS = (8, 16, 32, 64)
QUIET_G = 50.0


class LatticeFold:
    """Running fold of maps onto a ``period`` x ``period`` cell (see the module docstring)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.total = np.zeros((period, period))
        self.count = np.zeros((period, period))

    def add(self, values: np.ndarray, mask: np.ndarray) -> None:
        p = self.period
        h, w = (values.shape[0] // p) * p, (values.shape[1] // p) * p
        shape = (h // p, p, w // p, p)
        self.total += np.where(mask, values, 0.0)[:h, :w].reshape(shape).sum(axis=(0, 2))
        self.count += mask[:h, :w].reshape(shape).sum(axis=(0, 2))

    def amplitude(self) -> float:
        """Standard deviation (G) of the cell's mean values."""
        cell = self.total / np.maximum(self.count, 1)
        return float(cell[self.count > 0].std())


def diagnose(model: str | Path, data_dir: str | Path, eval_days: int = 0) -> dict[str, Any]:
    """Mean ``r_bin8_split`` over val days of ``model`` (ONNX) and of rotated persistence."""
    valset = load_valset(data_dir, eval_days, score_baselines=False)
    generator = OnnxGenerator(model)
    mask = preprocess.model_disk_mask()
    rows: dict[str, list[dict[str, float]]] = {"model": [], "persistence": []}
    folds = {name: [LatticeFold(p) for p in LATTICE_PERIODS] for name in ("model", "hmi")}
    for day, persistence in zip(valset.days, valset.baseline_preds["persistence"], strict=True):
        product = preprocess.model_to_gauss(generator.predict(day.x))
        rows["model"].append(r_bin8_split(product, day.truth, mask))
        rows["persistence"].append(r_bin8_split(persistence, day.truth, mask))
        quiet = mask & (np.abs(np.nan_to_num(day.truth)) < QUIET_G)
        for name, values in (("model", product), ("hmi", np.nan_to_num(day.truth))):
            for fold in folds[name]:
                fold.add(values, quiet)
    return {
        "version": generator.version,
        "n_days": len(valset.days),
        **{name: {k: float(np.nanmean([r[k] for r in split])) for k in SPLIT_KEYS}
           for name, split in rows.items()},
        "lattice_g": {name: {str(f.period): f.amplitude() for f in fs} for name, fs in folds.items()},
    }
