"""``synmag-train diagnose`` on the bundled model and two real val days."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_bundled_model import MODELS
from training.cli import main as synmag_train

pytestmark = pytest.mark.slow


def test_diagnose_splits_the_r_bin8_that_the_evaluation_reports(data_dir: Path, capsys) -> None:
    from training.evaluate import load_valset

    (model,) = sorted(MODELS.glob("*.onnx"))
    assert synmag_train(["diagnose", "--data-dir", str(data_dir), "--model", str(model), "--eval-days", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == model.stem and out["n_days"] == 2
    valset = load_valset(data_dir, 2)
    persistence = np.mean([s["r_bin8"] for s in valset.baseline_scores["persistence"]])
    assert out["persistence"]["signed"] == pytest.approx(persistence, abs=1e-9)
    for block in (out["model"], out["persistence"]):
        assert all(-1 <= block[k] <= 1 for k in ("signed", "unsigned", "own_sign", "true_sign")), block
