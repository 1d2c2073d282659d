"""``synmag-train diagnose`` on the bundled model and two real val days."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.inference.test_bundled_model import bundled_models
from training.cli import main as synmag_train


@pytest.mark.slow
def test_diagnose_splits_the_r_bin8_that_the_evaluation_reports(data_dir: Path, capsys) -> None:
    from training.evaluate import load_valset

    model = bundled_models()["halpha"]
    assert synmag_train(["diagnose", "--data-dir", str(data_dir), "--model", str(model), "--eval-days", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == model.stem and out["n_days"] == 2
    valset = load_valset(data_dir, 2)
    persistence = np.mean([s["r_bin8"] for s in valset.baseline_scores["persistence"]])
    assert out["persistence"]["signed"] == pytest.approx(persistence, abs=1e-9)
    for block in (out["model"], out["persistence"]):
        assert all(-1 <= block[k] <= 1 for k in ("signed", "unsigned", "own_sign", "true_sign")), block
    assert set(out["lattice_g"]) == {"model", "hmi"} and set(out["lattice_g"]["hmi"]) == {"8", "16", "32", "64"}


@pytest.mark.slow
def test_valset_without_baseline_scores_has_the_same_maps(data_dir: Path) -> None:
    from training.evaluate import load_valset

    scored, bare = load_valset(data_dir, 1), load_valset(data_dir, 1, score_baselines=False)
    assert bare.baseline_scores == {} and len(scored.baseline_scores["persistence"]) == 1
    for name in ("zero", "persistence"):
        np.testing.assert_array_equal(bare.baseline_preds[name][0], scored.baseline_preds[name][0])


def test_lattice_fold_finds_a_grid_pattern_and_not_noise() -> None:
    from training.diagnose import LatticeFold

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    grid = 10.0 * np.cos(2 * np.pi * xx / 32) * np.cos(2 * np.pi * yy / 32)  # std 5 G
    mask = np.ones((256, 256), bool)
    with_grid, noise = LatticeFold(32), LatticeFold(32)
    for _ in range(20):
        field = rng.normal(0, 5, (256, 256))  # the floor: 5 G / sqrt(64 * 20 samples a cell)
        with_grid.add(field + grid, mask)
        noise.add(field, mask)
    assert with_grid.amplitude() == pytest.approx(5.0, abs=0.5)
    assert noise.amplitude() < 0.5
