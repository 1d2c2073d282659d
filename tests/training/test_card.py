"""`synmag-train card`: the shipped ONNX lands in models/ with its metrics, and the card's
seed column is the mean and sd over runs of each run's val mean."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from training.model_card import build_card


def _metric(mean: float) -> dict:
    return {"mean": mean, "sd": 0.1, "n": 130}


def _run(tmp: Path, name: str, r_bin8: float, onnx: Path) -> Path:
    run = tmp / name
    (run / "report").mkdir(parents=True)
    keys = ("psnr", "ssim", "r", "r_bin8", "tumf_ratio", "netflux_ratio", "ar_psnr", "ar_ssim", "ar_r",
            "region_sign_agreement")
    ppa = {k: _metric(0.6) for k in ("0", "5", "10", "20", "30", "40", "50")}
    block = {**{k: _metric(0.5) for k in keys}, "r_bin8": _metric(r_bin8), "ppa": ppa, "ar_ppa": ppa}
    zero = {**block, "r_bin8": _metric(0.5)}
    persistence = {**block, "r_bin8": _metric(0.7)}
    report = {
        "version": name,
        "metrics": {"n_days": 130, "model": block, "baselines": {"zero": zero, "persistence": persistence}},
        "config": {"ngf": 16, "depth": 8, "crop": 256, "coords": True, "order": "chronological", "seed": 0},
        "lineage": {"train_days": {"n": 394, "first": "2013-01-04T00:00:34", "last": "2014-03-18T00:00:14"},
                    "train_data_sha256": "ab" * 32, "git_commit": "c" * 40,
                    "trained": {"epochs": 2, "steps": 10, "wall_s": 60.0, "crops_per_s": 4.0, "device": "cpu"},
                    "selected": {"epoch": 2, "step": 10}},
        "parity": {"max_abs_diff_g": 1e-3},
    }
    (run / "report" / "report.json").write_text(json.dumps(report))
    shutil.copyfile(onnx, run / f"{name}.onnx")
    return run


def test_card_ships_the_model_with_the_seed_spread(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx: the card copies bytes")
    runs = [_run(tmp_path, f"s{i}", r, onnx) for i, r in enumerate((0.2, 0.3, 0.4))]
    out = tmp_path / "models"
    card = build_card(runs[1], runs, [], out).read_text()
    assert (out / "s1.onnx").read_bytes() == onnx.read_bytes()
    assert json.loads((out / "s1.metrics.json").read_text())["model"]["r_bin8"]["mean"] == 0.3
    assert "| r 8x8 bins, full disk | 0.300 ± 0.100 | 0.300 | not run | 0.500 | 0.700 | 0.85 |" in card
    assert "0.300 vs 0.700, missed by 0.400" in card


def test_card_of_an_ensemble_names_its_members_and_their_cost(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx bytes")
    runs = [_run(tmp_path, f"s{i}", r, onnx) for i, r in enumerate((0.2, 0.3, 0.4))]
    ens = _run(tmp_path, "ens", 0.45, onnx)
    report_path = ens / "report" / "report.json"
    report = json.loads(report_path.read_text())
    report["ensemble"] = {"members": ["s0", "s1", "s2"], "ns_view": True, "weights": "float16",
                          "smooth_sigma_px": 3.0, "gain": 2.5,
                          "smoothing_sweep": {"0": {"r_bin8": 0.4, "ar_ppa_20": 0.6, "selection": 1.0},
                                              "3": {"r_bin8": 0.45, "ar_ppa_20": 0.65, "selection": 1.1}}}
    report_path.write_text(json.dumps(report))
    card = build_card(ens, runs, [], tmp_path / "models").read_text()
    assert "The mean of 3 runs of this configuration (`s0`, `s1`, `s2`)" in card
    assert "averages 6 predictions" in card
    assert "smoothed with a Gaussian of sigma 3 px" in card and "3 px: r_bin8 0.450" in card
    assert "a gain of 2.50 fitted on val" in card
    assert "r_bin8 0.450 -> 0.450, AR PPA@20 0.650 -> 0.600 on val" in card
    assert "float16 weights (computed in float32)" in card
    assert "- `ens`:" not in card and all(f"- `s{i}`:" in card for i in range(3))
    assert "| r 8x8 bins, full disk | 0.300 ± 0.100 | 0.450 |" in card


def test_cost_of_a_resumed_run_covers_only_its_own_epochs(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx bytes")
    run = _run(tmp_path, "long", 0.3, onnx)
    report_path = run / "report" / "report.json"
    report = json.loads(report_path.read_text())
    report["lineage"]["trained"].update(epochs=96, steps=4800, wall_s=3600.0)
    report["lineage"]["resumed_from"] = {"checkpoint": "x.pt", "epoch": 48, "step": 2400, "config_name": "short"}
    report_path.write_text(json.dumps(report))
    card = build_card(run, [run], [], tmp_path / "models").read_text()
    assert "- `long`: epochs 49-96 (steps 2401-4800, resumed from `short` at epoch 48) in 60 min" in card
