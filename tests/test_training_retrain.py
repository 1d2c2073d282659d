"""`synmag-train retrain` with the smoke config on the real data registers a version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_smoke_retrain_registers_a_version(data_dir: Path, tmp_path: Path) -> None:
    from service.registry import Registry
    from service.settings import load_settings
    from training.config import load_config
    from training.retrain import retrain

    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/synmag.db", store_url=f"file://{tmp_path}/store"
    )
    cfg = load_config("smoke", data_dir=str(data_dir), out_dir=str(tmp_path / "runs"))
    result = retrain(cfg, settings=settings, log=lambda _: None)

    rows = {mv.version: mv for mv in Registry(settings).list()}
    row = rows[result.version]
    assert len(row.sha256) == 64
    assert set(row.metrics["baselines"]) == {"zero", "persistence"}
    assert row.metrics["model"]["r_bin8"]["n"] == cfg.eval_days
    assert row.lineage["train_data_sha256"] and row.config["name"] == "smoke"
    report = json.loads(result.report_path.read_text())
    assert report["smoke"] is True and "6 of 130 val days" in report["note"]
    assert report["parity"]["max_abs_diff_g"] < 0.5
    first = report["per_day"]["persistence"][0]  # rotated from the last train day, 1 day back
    assert first["prev_time"].startswith("2014-03-18") and first["time"].startswith("2014-03-19")
    for png in ("examples.png", "ppa_vs_threshold.png", "metrics_table.png"):
        assert (result.report_path.parent / png).stat().st_size > 0
