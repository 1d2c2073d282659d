"""Quality gate: each reason triggered by the defect it names; good frames pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from service.devtools.gong_writer import write_gong_frame
from service.science.quality import Thresholds, gate
from service.settings import Settings
from service.sources.gong.reader import read_gong


@pytest.fixture(scope="module")
def good(synthetic_disk_u8):
    return read_gong(write_gong_frame(synthetic_disk_u8, "2024-02-16T00:00:02", "B", "hpln", rng=0))


def _with(frame, **quality):
    return dataclasses.replace(frame, quality={**frame.quality, **quality})


def test_good_frame_accepted(good):
    verdict = gate(good)
    assert verdict.accepted and verdict.reasons == []
    assert verdict.measures["sky_ratio"] < 0.1


@pytest.mark.parametrize(
    "quality, reason",
    [
        ({"eclipse": 1}, "eclipse"),
        ({"error_code": 3}, "filter_error"),
        ({"sharpness": 0.0001}, "low_sharpness"),
        ({"limb_points": 0}, "bad_limb_fit"),
    ],
)
def test_header_reasons(good, quality, reason):
    verdict = gate(_with(good, **quality))
    assert not verdict.accepted and verdict.reasons == [reason]


def test_bright_sky(good):
    median = gate(good).measures["disk_median"]
    assert gate(_with(good, sky_brightness=0.5 * median)).reasons == ["bright_sky"]


def test_elliptical_limb(good):
    assert gate(dataclasses.replace(good, radius_minmax_px=(860.0, 920.0))).reasons == ["bad_limb_fit"]


def test_wrong_shape(good):
    assert gate(dataclasses.replace(good, data=good.data[:1024, :1024])).reasons == ["wrong_shape"]


def test_nan_pixels(good):
    data = good.data.copy()
    data[1024, 1024] = np.nan
    assert gate(dataclasses.replace(good, data=data)).reasons == ["nan_pixels"]


def test_saturated_pixels(synthetic_disk_u8):
    raw = write_gong_frame(synthetic_disk_u8, "2024-02-16T00:00:02", "B", "gongx", gain=25.0, rng=0)
    frame = read_gong(raw)
    verdict = gate(frame)
    assert verdict.reasons == ["saturated_pixels"] and verdict.measures["saturated_fraction"] > 0.01


def test_sharper_frame_scores_higher(good):
    assert gate(_with(good, sharpness=0.02)).score > gate(_with(good, sharpness=0.01)).score


def test_missing_keys_skip_checks(good):
    frame = _with(good, sharpness=None, limb_points=None, eclipse=None, error_code=None, sky_brightness=None)
    assert gate(frame).accepted


def test_thresholds_from_settings():
    th = Thresholds.from_settings(Settings(gate_min_sharpness=0.05, gate_max_sky_brightness=0.2))
    assert th == Thresholds(min_sharpness=0.05, max_sky_ratio=0.2)
