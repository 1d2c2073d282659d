"""The nowcast's prior: the serving code's rotation, seen map and model inputs."""

from __future__ import annotations

import numpy as np

from service.science import preprocess
from service.science.metrics import DiskGeometry
from service.science.prior import model_inputs, prior_map, rotate_prior

GEOMETRY = DiskGeometry(preprocess.MODEL_CENTER, preprocess.MODEL_RADIUS_PX)
T0 = "2014-05-01T00:00:00"


def _field() -> np.ndarray:
    disk = preprocess.model_disk_mask()
    field = np.where(disk, 300.0, np.nan).astype(np.float32)
    return field


def test_a_prior_of_the_same_minute_is_itself_clipped_like_the_data():
    gauss, seen = rotate_prior(_field(), T0, T0, GEOMETRY)
    disk = preprocess.model_disk_mask()
    assert seen[disk].mean() > 0.999 and not seen[~disk].any()
    assert np.nanmax(gauss) == 200.0 and np.isnan(gauss[~disk]).all()


def test_an_old_prior_has_not_seen_the_east_band():
    gauss, seen = rotate_prior(_field(), T0, "2014-05-04T00:00:00", GEOMETRY)
    row = int(preprocess.MODEL_CENTER[1])
    east = slice(int(preprocess.MODEL_CENTER[0] - 440), int(preprocess.MODEL_CENTER[0] - 400))
    assert not seen[row, east].any() and (gauss[row, east] == 0).all()
    assert seen[row, 512:900].all()


def test_age_and_provenance_travel_with_the_map():
    p = prior_map(_field(), T0, "2014-05-01T06:30:00", GEOMETRY, provenance={"origin": "hmi.M_720s"})
    assert abs(p.age_h - 6.5) < 1e-6 and p.provenance["origin"] == "hmi.M_720s"


def test_model_inputs_are_batches_of_one_in_model_units():
    p = prior_map(_field(), T0, T0, GEOMETRY)
    feeds = model_inputs(p, (1024, 1024))
    assert feeds["prior"].shape == (1, 1, 1024, 1024) and feeds["prior"].max() == 1.0
    assert feeds["prior_age_h"].shape == (1, 1)
    none = model_inputs(None, (1024, 1024))
    assert not none["prior"].any() and not none["prior_seen"].any()
