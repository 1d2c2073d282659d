"""OnnxGenerator: loads a contract model once, refuses incompatible ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelIncompatible
from service.inference import onnx_model
from service.inference.onnx_model import OnnxGenerator, file_sha256, provider_list
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


@pytest.fixture
def preloads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Calls of onnxruntime.preload_dlls, counted (the once-per-process cache cleared)."""
    import onnxruntime

    calls: list[int] = []
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda: calls.append(1), raising=False)
    onnx_model.preload_gpu_libraries.cache_clear()
    yield calls
    onnx_model.preload_gpu_libraries.cache_clear()


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")  # no CUDA here: ORT falls back
def test_gpu_providers_preload_cuda_libraries_once(tiny_onnx: Path, preloads: list[int]) -> None:
    for _ in range(2):
        OnnxGenerator(tiny_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert preloads == [1]


def test_cpu_provider_preloads_nothing(tiny_onnx: Path, preloads: list[int]) -> None:
    OnnxGenerator(tiny_onnx)
    assert preloads == []


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")  # no CUDA here: ORT falls back
def test_a_failed_preload_still_loads_the_model(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    def broken() -> None:
        raise OSError("libcudart.so.13: cannot open shared object file")

    monkeypatch.setattr(onnxruntime, "preload_dlls", broken, raising=False)
    onnx_model.preload_gpu_libraries.cache_clear()
    try:
        model = OnnxGenerator(tiny_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    finally:
        onnx_model.preload_gpu_libraries.cache_clear()
    assert model.active_providers == ["CPUExecutionProvider"]
    assert "preload_dlls failed" in caplog.text


def test_tensorrt_gets_engine_and_timing_caches(tmp_path: Path) -> None:
    trt, cuda, cpu = provider_list(
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], tmp_path / "trt"
    )
    name, options = trt
    assert name == "TensorrtExecutionProvider" and (cuda, cpu) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert options["trt_engine_cache_enable"] == "True" and options["trt_timing_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(tmp_path / "trt")
    assert (tmp_path / "trt").is_dir()


def test_without_a_cache_folder_providers_stay_names() -> None:
    names = ["TensorrtExecutionProvider", "CPUExecutionProvider"]
    assert provider_list(names) == names


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")  # no TensorRT here: ORT falls back
def test_a_model_asked_for_tensorrt_passes_the_cache(tiny_onnx: Path, tmp_path: Path) -> None:
    model = OnnxGenerator(tiny_onnx, providers=["TensorrtExecutionProvider", "CPUExecutionProvider"],
                          trt_cache_dir=tmp_path / "trt")
    assert model.active_providers == ["CPUExecutionProvider"]
    assert (tmp_path / "trt").is_dir()


def test_refuses_missing_or_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(ModelIncompatible, match="not found"):
        OnnxGenerator(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelIncompatible, match="cannot load"):
        OnnxGenerator(junk)
