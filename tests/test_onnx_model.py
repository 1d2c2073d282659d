"""OnnxGenerator: loads a contract model once, refuses incompatible ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelIncompatible
from service.inference.onnx_model import OnnxGenerator, file_sha256
from service.science.preprocess import PREPROCESS_VERSION


def test_loads_contract_model(tiny_onnx: Path) -> None:
    model = OnnxGenerator(tiny_onnx)
    assert model.metadata["preprocess_version"] == PREPROCESS_VERSION
    assert model.metadata["units"] == "model"
    assert model.version == "tiny-test"
    assert model.sha256 == file_sha256(tiny_onnx) and len(model.sha256) == 64
    assert model.active_providers == ["CPUExecutionProvider"]
    assert model.geometry is not None and model.geometry["radius_px"] == 450.0


def test_predict_keeps_shape_and_units(tiny_onnx: Path) -> None:
    model = OnnxGenerator(tiny_onnx, threads=1)
    x = np.random.default_rng(0).uniform(-1, 1, (256, 512)).astype(np.float32)
    y = model.predict(x)
    assert y.shape == (256, 512) and y.dtype == np.float32
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0  # tanh output, model units


def test_predict_rejects_bad_shapes(tiny_onnx: Path) -> None:
    model = OnnxGenerator(tiny_onnx, threads=1)
    with pytest.raises(ValueError, match="multiple of 256"):
        model.predict(np.zeros((300, 256), np.float32))


def test_refuses_other_preprocess_version(tiny_onnx_factory) -> None:
    path = tiny_onnx_factory(preprocess_version="0-other")
    with pytest.raises(ModelIncompatible, match="preprocessing version '0-other'"):
        OnnxGenerator(path)


def test_refuses_model_without_metadata(tiny_onnx: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelIncompatible, match="missing metadata synmag.preprocess_version"):
        OnnxGenerator(bare)


def test_refuses_when_gpu_required_but_absent(tiny_onnx: Path) -> None:
    with pytest.raises(ModelIncompatible, match="GPU provider is required"):
        OnnxGenerator(tiny_onnx, require_gpu=True)


def test_refuses_missing_or_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(ModelIncompatible, match="not found"):
        OnnxGenerator(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelIncompatible, match="cannot load"):
        OnnxGenerator(junk)
