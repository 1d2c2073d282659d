"""The nowcast contract: a model of kind nowcast takes a prior, the service picks it only with one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelIncompatible
from service.inference.onnx_model import OnnxGenerator
from service.inference.process import ServingModels
from service.science.prior import PriorMap, model_inputs
from service.vocabulary import ModelKind


def _prior(value_g: float = 100.0, age_h: float = 24.0) -> PriorMap:
    gauss = np.full((1024, 1024), value_g, np.float32)
    return PriorMap(gauss=gauss, seen=np.ones((1024, 1024), bool), age_h=age_h,
                    provenance={"obs_time": "2014-05-01T00:00:00+00:00", "origin": "hmi.M_720s", "sha256": "f" * 64})


def test_nowcast_declares_its_kind_inputs_and_calibration(tiny_nowcast_onnx: Path) -> None:
    model = OnnxGenerator(tiny_nowcast_onnx, threads=1)
    assert model.kind == ModelKind.NOWCAST and model.polarity_from_prior
    assert model.has_sigma and model.calibration is not None


def test_nowcast_needs_a_prior(tiny_nowcast_onnx: Path) -> None:
    model = OnnxGenerator(tiny_nowcast_onnx, threads=1)
    with pytest.raises(ValueError, match="needs a prior"):
        model.infer(np.zeros((1024, 1024), np.float32))


def test_halpha_model_takes_no_prior(tiny_onnx: Path) -> None:
    model = OnnxGenerator(tiny_onnx, threads=1)
    with pytest.raises(ValueError, match="takes no prior"):
        model.infer(np.zeros((1024, 1024), np.float32), model_inputs(_prior(), (1024, 1024)))


def test_untrained_nowcast_follows_its_prior(tiny_nowcast_onnx: Path) -> None:
    # The head starts as 0.95 x prior (tests/models.py): the field's sign is the prior's.
    model = OnnxGenerator(tiny_nowcast_onnx, threads=1)
    for sign in (1, -1):
        bz, sigma = model.infer(np.zeros((1024, 1024), np.float32), model_inputs(_prior(sign * 100.0), (1024, 1024)))
        assert np.sign(np.median(bz)) == sign and sigma is not None and (sigma > 0).all()


def test_refuses_a_model_whose_inputs_do_not_match_its_kind(tiny_onnx_factory) -> None:
    path = tiny_onnx_factory(kind="nowcast", version="halpha-graph-claiming-nowcast")
    with pytest.raises(ModelIncompatible, match="this service feeds"):
        OnnxGenerator(path)


def test_refuses_a_malformed_calibration(tiny_onnx_factory) -> None:
    path = tiny_onnx_factory(calibration='{"version": 1, "abs_edges_g": [1]}', version="bad-cal")
    with pytest.raises(ModelIncompatible, match="calibration is malformed"):
        OnnxGenerator(path)


def test_choose_takes_the_nowcast_only_with_a_prior(tiny_onnx: Path, tiny_nowcast_onnx: Path) -> None:
    halpha, nowcast = OnnxGenerator(tiny_onnx, threads=1), OnnxGenerator(tiny_nowcast_onnx, threads=1)
    models = ServingModels(halpha=halpha, nowcast=nowcast)
    assert models.choose(_prior(), None)[0] is nowcast
    model, prior, note = models.choose(None, "no magnetogram 0-168 h before the frame")
    assert model is halpha and prior is None and note.startswith("no magnetogram")


def test_a_nowcast_alone_cannot_serve_without_a_prior(tiny_nowcast_onnx: Path) -> None:
    models = ServingModels.of(OnnxGenerator(tiny_nowcast_onnx, threads=1))
    with pytest.raises(ModelIncompatible, match="no H-alpha-only model"):
        models.choose(None, "outage")
