"""The shipped models in ``models/``: one per kind, small enough, built for this preprocessing,
calibrated, carded, and what ``synmag process`` uses when no ``--model`` is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits

from service.cli import main as synmag

MODELS = Path(__file__).resolve().parents[2] / "models"


def bundled_models() -> dict[str, Path]:
    """The bundled ONNX file of each kind (``synmag.kind``)."""
    from service.registry import onnx_metadata

    found: dict[str, Path] = {}
    for path in sorted(MODELS.glob("*.onnx")):
        kind = onnx_metadata(path).get("synmag.kind", "halpha")
        assert kind not in found, f"two bundled {kind} models: {found[kind].name}, {path.name}"
        found[kind] = path
    return found


@pytest.fixture(scope="module")
def bundled() -> dict[str, Path]:
    found = bundled_models()
    assert set(found) == {"halpha", "nowcast"}, f"one bundled model of each kind expected, found {found}"
    return found


@pytest.mark.parametrize("kind", ["halpha", "nowcast"])
def test_under_32_mb(bundled: dict[str, Path], kind: str) -> None:
    assert bundled[kind].stat().st_size < 32 * 2**20


@pytest.mark.parametrize("kind", ["halpha", "nowcast"])
def test_built_for_this_preprocessing_with_a_calibration(bundled: dict[str, Path], kind: str) -> None:
    from service.inference.onnx_model import OnnxGenerator

    model = OnnxGenerator(bundled[kind])  # refuses another preprocessing version or other inputs
    assert model.version == bundled[kind].stem and model.kind == kind and model.calibration is not None


@pytest.mark.parametrize("kind", ["halpha", "nowcast"])
def test_card_and_metrics_beside_it(bundled: dict[str, Path], kind: str) -> None:
    path = bundled[kind]
    card = (MODELS / "model_card.md").read_text()
    assert path.stem in card and "cycle 25" in card and "reliability" in card.lower()
    metrics = json.loads(path.with_name(f"{path.stem}.metrics.json").read_text())
    assert {"zero", "persistence"} <= set(metrics["baselines"])
    assert metrics["n_days"] == 130  # scored on the whole val split
    assert {"ece", "auroc", "coverage", "decile_ratio"} <= set(metrics["calibration"])


def test_the_nowcast_card_has_the_table_by_prior_age(bundled: dict[str, Path]) -> None:
    metrics = json.loads(bundled["nowcast"].with_name(f"{bundled['nowcast'].stem}.metrics.json").read_text())
    ages = [row["age_days"] for row in metrics["by_age_seeds"]]
    assert ages == [1, 2, 3, 5, 7, 0] and metrics["by_age_seeds"][0]["seeds"] >= 3


@pytest.mark.slow
def test_process_without_model_uses_the_halpha_one(
    bundled: dict[str, Path], real_frame_paths: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SYNMAG_DATABASE_URL", f"sqlite:///{tmp_path}/synmag.db")
    monkeypatch.setenv("SYNMAG_STORE_URL", f"file://{tmp_path}/store")
    monkeypatch.delenv("SYNMAG_MODEL", raising=False)
    monkeypatch.delenv("SYNMAG_BUNDLED_MODEL_DIR", raising=False)
    out = tmp_path / "out"
    assert synmag(["process", str(real_frame_paths["gongx"]), "--out", str(out)]) == 0
    (product,) = out.glob("*.fits")
    assert fits.getheader(product)["MODELVER"] == bundled["halpha"].stem
