"""service.observability: products by model kind, the prior's age, calibration gauges."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from service import observability as obs
from service.observability import REGISTRY


@pytest.fixture(autouse=True)
def _fresh_newest(monkeypatch) -> None:
    """Each test starts as if no product were committed yet (the module keeps the newest)."""
    monkeypatch.setattr(obs, "_newest_obs_unix", 0.0)
    monkeypatch.setattr(obs, "_newest_prior_obs_unix", 0.0)


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels or None)


def test_products_are_counted_by_model_kind() -> None:
    obs.init_metrics()
    before = {k: sample("synmag_products_total", kind=k) for k in ("halpha", "nowcast")}
    obs.product_committed(1.7e9, kind="nowcast", prior_age_h=3.0)
    obs.product_committed(1.7e9 + 60, kind="halpha")
    obs.product_committed(1.7e9 + 120)  # a caller that says no kind: halpha, the only kind before nowcasts
    assert sample("synmag_products_total", kind="nowcast") == before["nowcast"] + 1
    assert sample("synmag_products_total", kind="halpha") == before["halpha"] + 2


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        obs.product_committed(1.7e9, kind="mystery")


def test_prior_age_is_the_newest_products_in_seconds() -> None:
    obs.product_committed(1.7e9, kind="nowcast", prior_age_h=3.2)
    assert sample("synmag_prior_age_seconds") == pytest.approx(3.2 * 3600)
    assert sample("synmag_last_prior_product_timestamp_seconds") == 1.7e9


def test_prior_age_is_nan_when_the_newest_product_had_no_prior() -> None:
    obs.product_committed(1.7e9, kind="nowcast", prior_age_h=3.2)
    obs.product_committed(1.7e9 + 60, kind="halpha")
    assert math.isnan(sample("synmag_prior_age_seconds"))
    assert sample("synmag_last_prior_product_timestamp_seconds") == 1.7e9  # the last one that had a prior


def test_a_catch_up_product_does_not_change_the_newest_prior_age() -> None:
    obs.product_committed(1.7e9, kind="nowcast", prior_age_h=1.0)
    obs.product_committed(1.7e9 - 3600, kind="nowcast", prior_age_h=30.0)  # an older minute filled in
    assert sample("synmag_prior_age_seconds") == pytest.approx(3600.0)
    assert sample("synmag_last_prior_product_timestamp_seconds") == 1.7e9


def test_calibration_gauges_are_by_kind_and_start_as_nan() -> None:
    obs.init_metrics()
    assert math.isnan(sample("synmag_calibration_score", metric="ece", kind="halpha"))
    obs.set_calibration("halpha", {"ece": 0.04, "coverage": 0.7, "auroc": None})
    assert sample("synmag_calibration_score", metric="ece", kind="halpha") == 0.04
    assert sample("synmag_calibration_score", metric="coverage", kind="halpha") == 0.7
    assert math.isnan(sample("synmag_calibration_score", metric="auroc", kind="halpha"))
    assert math.isnan(sample("synmag_calibration_score", metric="ece", kind="nowcast"))


@pytest.mark.parametrize(("prior_source", "configured"), [("none", 0.0), ("dir", 1.0)])
def test_the_pipeline_exports_whether_a_prior_source_is_configured(
        tiny_onnx: Path, tmp_path: Path, prior_source: str, configured: float) -> None:
    from service.pipeline.wiring import open_pipeline
    from service.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite", store_url=f"file://{tmp_path}/store",
                        model=str(tiny_onnx), model_cache_dir=tmp_path / "cache", bundled_model_dir=tmp_path / "none",
                        prior_source=prior_source, prior_dir=tmp_path)
    pipeline = open_pipeline(settings)
    pipeline.close()
    assert sample("synmag_prior_source_configured") == configured
