"""Training reads built pairs alone or with Ha2Mag; output scalings beyond +-200 G, in training and serving."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelIncompatible
from service.inference.onnx_model import OnnxGenerator
from service.science import preprocess
from service.science.dataset import read_hmi_gauss
from service.science.output_scaling import DEFAULT, OutputScaling
from training.data import DeviceDays, read_model_pair, split_days, training_days_metadata
from training.dataset.manifest import FORMAT
from training.dataset.pairs import pair_name, write_pair

ASINH = OutputScaling("asinh", max_g=3000.0, scale_g=100.0)


# --------------------------------------------------------------------------- scaling
def test_the_default_scaling_is_the_old_linear_200() -> None:
    b = np.array([-500.0, -200.0, -3.0, 0.0, 150.0, 999.0, np.nan], np.float32)
    assert np.array_equal(DEFAULT.to_model(b), preprocess.gauss_to_model(b), equal_nan=True)
    assert OutputScaling.from_metadata({"gauss_scale": "200.0"}) == DEFAULT


def test_asinh_keeps_kilogauss_fields_and_the_quiet_sun() -> None:
    b = np.array([-2900.0, -150.0, -2.0, 0.0, 2.0, 1200.0, 5000.0], np.float32)
    back = ASINH.to_gauss(ASINH.to_model(b))
    assert np.allclose(back[:-1], b[:-1], rtol=1e-4, atol=1e-3) and back[-1] == pytest.approx(3000.0, rel=1e-4)
    assert ASINH.to_model(np.float32(3000.0)) == pytest.approx(1.0)
    assert OutputScaling.parse("asinh:100:3000") == ASINH and OutputScaling.parse("linear:200") == DEFAULT


def test_metadata_whose_gauss_scale_disagrees_is_refused() -> None:
    with pytest.raises(ValueError, match="gauss_scale"):
        OutputScaling.from_metadata({"output_scaling": ASINH.to_json(), "gauss_scale": "200.0"})
    assert OutputScaling.from_metadata({"output_scaling": ASINH.to_json(), "gauss_scale": "3000.0"}) == ASINH


def test_the_service_decodes_a_models_output_per_its_metadata(tiny_onnx_factory: Callable[..., Path]) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (256, 256)).astype(np.float32)
    raw = OnnxGenerator(tiny_onnx_factory(), threads=1).predict(x)  # linear 200: raw output
    model = OnnxGenerator(tiny_onnx_factory(output_scaling=ASINH), threads=1)
    assert model.output_scaling == ASINH and model.metadata["gauss_scale"] == "3000.0"
    assert np.allclose(model.predict(x) * 200.0, ASINH.to_gauss(raw), rtol=1e-5, atol=1e-4)


def test_a_model_with_an_unknown_scaling_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(tiny_onnx))
    entry = proto.metadata_props.add()  # what a newer training might write
    entry.key, entry.value = "synmag.output_scaling", '{"kind": "cubic", "max_g": 200.0}'
    onnx.save(proto, str(tmp_path / "cubic.onnx"))
    with pytest.raises(ModelIncompatible, match="cubic"):
        OnnxGenerator(tmp_path / "cubic.onnx")


# --------------------------------------------------------------------------- layouts
T25 = datetime(2025, 5, 1, 0, 0, 54, tzinfo=UTC)


def write_built(folder: Path, n: int = 3) -> list[str]:
    """``n`` synthetic pairs a day apart from T25 (a 2500 G spot in each), and a manifest split."""
    folder.mkdir()
    mask = preprocess.model_disk_mask()
    names = []
    for i in range(n):
        gauss = np.where(mask, np.float32(5.0 * i), np.nan).astype(np.float32)
        gauss[600:610, 500:510] = 2500.0
        halpha = np.where(mask, np.float32(190.0 + i), np.float32(0.0))
        name = pair_name(T25 + timedelta(days=i))
        write_pair(folder / name, halpha, gauss, {"DATE-OBS": f"{T25 + timedelta(days=i):%Y-%m-%dT%H:%M:%S}"})
        names.append(name)
    split = {"train": names[:-1], "val": names[-1:], "test": [], "error": None}
    (folder / "manifest.json").write_text(json.dumps({"format": FORMAT, "steps": {}, "split": split}))
    return names


def test_a_built_folder_alone_gives_the_manifests_split(tmp_path: Path) -> None:
    names = write_built(tmp_path / "built")
    splits = split_days(tmp_path / "built")
    assert [d.halpha_path.name for d in splits["train"]] == names[:2] and splits["val"][0].kind == "pair"
    assert training_days_metadata(splits["train"])["solar_cycle"] == 25


def test_asinh_targets_on_the_device_keep_a_2500_g_spot(tmp_path: Path) -> None:
    write_built(tmp_path / "built")
    days = DeviceDays(split_days(tmp_path / "built")["train"], "cpu", scaling=ASINH)  # checks its decode
    _, y = days.full(0)
    assert float(y[0, 0, 605, 505]) == pytest.approx(math.asinh(25.0) / math.asinh(30.0), rel=2e-3)
    assert float(read_model_pair(days.days[0])[1][605, 505]) == 1.0  # linear 200 clips it


@pytest.fixture
def webp_root(data_dir: Path, tmp_path: Path) -> Path:
    val = sorted((data_dir / "val").glob("*_halpha.webp"))[:3]
    for split, files in (("train", val[:2]), ("val", val[2:])):
        (tmp_path / "ha2mag" / split).mkdir(parents=True)
        for ha in files:
            for f in (ha, ha.with_name(ha.name.replace("_halpha", "_hmi"))):
                (tmp_path / "ha2mag" / split / f.name).symlink_to(f)
    return tmp_path / "ha2mag"


def test_both_layouts_together_align_cycle_24_on_cycle_25(webp_root: Path, tmp_path: Path) -> None:
    write_built(tmp_path / "built")
    splits = split_days(f"{webp_root},{tmp_path / 'built'}")
    train = splits["train"]
    assert [d.kind for d in train] == ["webp", "webp", "pair", "pair"]
    assert [d.sign for d in train] == [-1, -1, 1, 1] and len(splits["val"]) == 2
    assert training_days_metadata(train)["solar_cycle"] == 25
    days = DeviceDays(train, "cpu")  # mixed kinds: decode checked against the numpy path
    _, y = days.full(0)
    truth = read_hmi_gauss(train[0].hmi_path)
    inner = preprocess.model_disk_mask(radius_px=400)
    assert np.allclose(y[0, 0].numpy()[inner], -truth[inner] / 200.0, atol=2e-3)  # negated, float16
