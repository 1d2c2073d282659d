"""Small untrained ONNX generators for exercising the inference path (pytest plugin).

They are built here, at test time, with ``training.export.export_onnx``, so they
follow the same contract as a trained model (input ``halpha``, output ``bz``,
dynamic N/H/W, ``synmag.*`` metadata). They are random: test-only, never shipped.

Fixtures
--------
tiny_onnx
    Path to a tiny generator (ngf 4, depth 8: any H, W multiple of 256) whose
    ``synmag.preprocess_version`` is the current ``PREPROCESS_VERSION``.
tiny_onnx_factory
    ``factory(preprocess_version=None, **metadata) -> Path``: the same network with
    other metadata, e.g. a wrong preprocessing version for refusal tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TINY_NGF = 4
TINY_DEPTH = 8
TINY_SEED = 1234


def _build(path: Path, **metadata: Any) -> Path:
    torch = pytest.importorskip("torch", reason="tiny ONNX models are built with torch (train extra)")
    pytest.importorskip("onnx", reason="tiny ONNX models are built with onnx (train extra)")
    from training.export import export_onnx
    from training.model import UNetGenerator, init_weights

    torch.manual_seed(TINY_SEED)
    generator = UNetGenerator(ngf=TINY_NGF, depth=TINY_DEPTH, norm="batch", dropout=0.0)
    init_weights(generator)
    config = {"name": "tiny-untrained-test-only", "ngf": TINY_NGF, "depth": TINY_DEPTH, "norm": "batch"}
    meta: dict[str, Any] = {
        "config": json.dumps(config, sort_keys=True),
        "train_data_sha256": "untrained",
        "version": "tiny-test",
    }
    meta.update(metadata)
    return export_onnx(generator, path, meta)


@pytest.fixture(scope="session")
def tiny_onnx_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build tiny untrained generators with chosen metadata (cached per metadata)."""
    cache: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("tiny-onnx")

    def factory(preprocess_version: str | None = None, **metadata: Any) -> Path:
        from service.science.preprocess import PREPROCESS_VERSION

        meta = dict(metadata)
        meta["preprocess_version"] = PREPROCESS_VERSION if preprocess_version is None else preprocess_version
        key = json.dumps(meta, sort_keys=True, default=str)
        if key not in cache:
            cache[key] = _build(folder / f"tiny-{len(cache)}.onnx", **meta)
        return cache[key]

    return factory


@pytest.fixture(scope="session")
def tiny_onnx(tiny_onnx_factory: Callable[..., Path]) -> Path:
    """A tiny untrained generator with the current preprocessing version."""
    return tiny_onnx_factory()


TINY_CALIBRATION_JSON = json.dumps({
    "abs_edges_g": [20.0], "sigma_factor": [1.0, 1.0], "z_knots": [0.0, 1.0, 3.0],
    "p_right": [0.5, 0.7, 0.95], "version": 1,
})
"""A plausible calibration for tiny models (``service.science.uncertainty.Calibration``)."""


@pytest.fixture(scope="session")
def tiny_nowcast_onnx(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained nowcast: the tiny generator composed with an untrained head.

    The head starts as (almost) persistence: its field is ``0.95 * prior`` and its sigma
    40 G (``training.nowcast.model.NowcastHead``'s initial output), so products follow
    their prior's polarity. Carries :data:`TINY_CALIBRATION_JSON`.
    """
    torch = pytest.importorskip("torch", reason="tiny ONNX models are built with torch (train extra)")
    pytest.importorskip("onnx", reason="tiny ONNX models are built with onnx (train extra)")
    from training.nowcast.config import NowcastConfig
    from training.nowcast.export import export_nowcast
    from training.nowcast.model import Nowcast

    torch.manual_seed(TINY_SEED)
    cfg = NowcastConfig(channels=(8, 8))
    path = tmp_path_factory.mktemp("tiny-nowcast") / "tiny-nowcast.onnx"
    return export_nowcast([Nowcast(cfg)], tiny_onnx, path, {
        "version": "tiny-nowcast-test", "config": cfg.to_json(), "train_data_sha256": "untrained",
        "calibration": TINY_CALIBRATION_JSON,
    })


@pytest.fixture(scope="session")
def tiny_calibrated_onnx(tiny_onnx_factory: Callable[..., Path]) -> Path:
    """The tiny H-alpha-only generator with :data:`TINY_CALIBRATION_JSON`."""
    return tiny_onnx_factory(calibration=TINY_CALIBRATION_JSON, version="tiny-calibrated")
