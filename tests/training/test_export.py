"""ONNX export: the model contract, and parity with torch on real val frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.science.dataset import read_halpha_u8
from service.science.preprocess import PREPROCESS_VERSION, halpha_to_model
from training.export import REQUIRED_KEYS, ParityError, export_onnx, parity, read_metadata
from training.model import UNetGenerator, init_weights


def _generator(seed: int, ngf: int = 4):
    import torch

    torch.manual_seed(seed)
    g = UNetGenerator(ngf=ngf, depth=8)
    init_weights(g)
    # Non-trivial batch-norm statistics, so eval mode differs from train mode.
    g.train()
    with torch.no_grad():
        for _ in range(2):
            g(torch.randn(2, 1, 256, 256))
    return g


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    g = _generator(0)
    path = export_onnx(g, tmp_path_factory.mktemp("export") / "g.onnx",
                       {"config": {"ngf": 4}, "train_data_sha256": "abc", "version": "v-test"})
    return g, path


def test_metadata_follows_the_contract(exported) -> None:
    _, path = exported
    meta = read_metadata(path)
    assert {f"synmag.{k}" for k in REQUIRED_KEYS} <= set(meta)
    assert meta["synmag.preprocess_version"] == PREPROCESS_VERSION
    assert meta["synmag.units"] == "model" and float(meta["synmag.gauss_scale"]) == 200.0
    assert json.loads(meta["synmag.geometry"])["size"] == [1024, 1024]
    assert json.loads(meta["synmag.config"]) == {"ngf": 4}
    assert meta["synmag.version"] == "v-test"


def test_io_names_and_dynamic_shapes(exported) -> None:
    import onnxruntime as ort

    _, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["halpha"]
    assert [o.name for o in session.get_outputs()] == ["bz"]
    for shape in [(1, 1, 256, 256), (2, 1, 512, 768)]:
        out = session.run(["bz"], {"halpha": np.zeros(shape, np.float32)})[0]
        assert out.shape == shape


def test_parity_on_real_val_frame_below_half_gauss(exported, val_pair: tuple[Path, Path]) -> None:
    g, path = exported
    frame = halpha_to_model(read_halpha_u8(val_pair[0]))[None]
    result = parity(g, path, frame)
    assert result["max_abs_diff_g"] < 0.5
    assert g.training  # the caller's module is left as it was


def test_parity_fails_for_another_network(exported, val_pair: tuple[Path, Path]) -> None:
    _, path = exported
    frame = halpha_to_model(read_halpha_u8(val_pair[0]))[None]
    with pytest.raises(ParityError):
        parity(_generator(1), path, frame)


def test_position_channels_survive_export(tmp_path) -> None:
    """A generator with position channels exports with one input; ONNX == torch on a full frame."""
    import onnxruntime as ort
    import torch

    from training.export import export_onnx
    from training.model import UNetGenerator

    torch.manual_seed(0)
    g = UNetGenerator(ngf=4, depth=8, coords=True).eval()
    path = export_onnx(g, tmp_path / "g.onnx", {"synmag.version": "coords-test"})
    x = torch.rand(1, 1, 512, 512) * 2 - 1
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["halpha"]
    (out,) = sess.run(None, {"halpha": x.numpy()})
    with torch.no_grad():
        ref = g(x).numpy()
    assert abs(out - ref).max() < 1e-4
    # the position matters: the same input without it gives a different answer
    with torch.no_grad():
        other = g(x, torch.zeros(1, 2, 512, 512)).numpy()
    assert abs(other - ref).max() > 1e-4


def test_resize_decoder_draws_no_checkerboard() -> None:
    """On a constant image a transposed doubling leaves a period-2 pattern; nearest + 3x3 does not."""
    import torch

    from training.model import _up

    torch.manual_seed(0)
    x = torch.ones(1, 4, 16, 16)
    for kind, patterned in (("transpose", True), ("resize", False)):
        with torch.no_grad():
            y = torch.nn.Sequential(*_up(kind, 4, 1, bias=False))(x)[0, 0, 2:-2, 2:-2]
        assert y.shape == (28, 28)
        assert bool((y.max() - y.min()) > 1e-3) == patterned, kind


def test_resize_decoder_exports_with_parity(tmp_path) -> None:
    """The resize decoder is plain ONNX (Resize + Conv): ONNX == torch on a full frame."""
    import onnx
    import onnxruntime as ort
    import torch

    from training.export import export_onnx
    from training.model import UNetGenerator

    torch.manual_seed(0)
    g = UNetGenerator(ngf=4, depth=8, coords=True, upsample="resize").eval()
    path = export_onnx(g, tmp_path / "g.onnx", {"synmag.version": "resize-test"})
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Resize" in ops and "ConvTranspose" not in ops
    x = torch.rand(1, 1, 512, 512) * 2 - 1
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"halpha": x.numpy()}
    )
    with torch.no_grad():
        assert abs(out - g(x).numpy()).max() < 1e-4


def test_working_scale_exports_full_frames(tmp_path) -> None:
    """A scale-4 generator takes and returns full-resolution frames through ONNX too."""
    import onnxruntime as ort
    import torch

    from training.export import export_onnx
    from training.model import UNetGenerator

    torch.manual_seed(0)
    g = UNetGenerator(ngf=4, depth=8, coords=True, scale=4).eval()
    path = export_onnx(g, tmp_path / "g.onnx", {"synmag.version": "scale-test"})
    x = torch.rand(1, 1, 1024, 1024) * 2 - 1
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"halpha": x.numpy()}
    )
    assert out.shape == (1, 1, 1024, 1024)
    with torch.no_grad():
        ref = g(x).numpy()
        # the network itself worked on 4x4 block means
        native = g(torch.nn.functional.avg_pool2d(x, 4), native=True)
    assert abs(out - ref).max() < 1e-4
    assert native.shape == (1, 1, 256, 256)


def test_float16_weights_halve_the_file_and_keep_parity(tmp_path, val_pair: tuple[Path, Path]) -> None:
    g = _generator(0, ngf=8)
    meta = {"version": "v-f16"}
    full = export_onnx(g, tmp_path / "f32.onnx", meta)
    half = export_onnx(g, tmp_path / "f16.onnx", meta, weights="float16")
    assert half.stat().st_size < 0.55 * full.stat().st_size
    frame = halpha_to_model(read_halpha_u8(val_pair[0]))[None]
    assert parity(g, half, frame)["max_abs_diff_g"] < 0.5


def test_unknown_weight_type_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="float16"):
        export_onnx(_generator(0), tmp_path / "x.onnx", {}, weights="int8")
