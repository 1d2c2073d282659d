"""The shipped model in ``models/``: small enough, built for this preprocessing, carded,
and what ``synmag process`` uses when no ``--model`` is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits

from service.cli import main as synmag

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def bundled() -> Path:
    found = sorted(MODELS.glob("*.onnx"))
    assert len(found) == 1, f"exactly one bundled model expected in {MODELS}, found {found}"
    return found[0]


def test_under_32_mb(bundled: Path) -> None:
    assert bundled.stat().st_size < 32 * 2**20


def test_built_for_this_preprocessing(bundled: Path) -> None:
    from service.inference.onnx_model import OnnxGenerator

    model = OnnxGenerator(bundled)  # refuses a model of another preprocessing version
    assert model.version == bundled.stem


def test_card_and_metrics_beside_it(bundled: Path) -> None:
    card = (MODELS / "model_card.md").read_text()
    assert bundled.stem in card and "cycle 25" in card
    metrics = json.loads(bundled.with_name(f"{bundled.stem}.metrics.json").read_text())
    assert set(metrics["baselines"]) == {"zero", "persistence"}
    assert metrics["n_days"] == 130  # scored on the whole val split


@pytest.mark.slow
def test_process_without_model_uses_it(
    bundled: Path, real_frame_paths: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SYNMAG_DATABASE_URL", f"sqlite:///{tmp_path}/synmag.db")
    monkeypatch.setenv("SYNMAG_STORE_URL", f"file://{tmp_path}/store")
    monkeypatch.delenv("SYNMAG_MODEL", raising=False)
    monkeypatch.delenv("SYNMAG_BUNDLED_MODEL_DIR", raising=False)
    out = tmp_path / "out"
    assert synmag(["process", str(real_frame_paths["gongx"]), "--out", str(out)]) == 0
    (product,) = out.glob("*.fits")
    assert fits.getheader(product)["MODELVER"] == bundled.stem
