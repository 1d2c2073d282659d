"""SIGMA and CONFIDENCE: the calibration's fit, its application and the bar's figures."""

from __future__ import annotations

import numpy as np
import pytest

from service.science.uncertainty import (
    Calibration,
    auroc,
    calibration_scores,
    fit,
    passes_gate,
    pav,
)


def _synthetic(n: int = 200_000, seed: int = 0):
    """Pixels whose error scale grows with |B|, with a raw sigma that knows that scale roughly
    (as a learned head does), and whose sign is right more often when |B| is large."""
    rng = np.random.default_rng(seed)
    truth = rng.choice([-1, 1], n) * rng.uniform(21, 200, n)
    scale = 2 + 0.5 * np.abs(truth)
    bz = truth + rng.normal(0, scale)
    raw_sigma = scale * np.exp(rng.normal(0, 0.2, n)) / 40.0  # off by a factor: the fit finds it
    return bz.astype(np.float32), raw_sigma.astype(np.float32), truth.astype(np.float32)


def test_json_round_trip():
    cal = Calibration(abs_edges_g=[20.0], sigma_factor=[1.0, 2.0], z_knots=[0.0, 2.0], p_right=[0.5, 0.9])
    assert Calibration.from_json(cal.to_json()) == cal


def test_refuses_a_non_monotone_confidence_table():
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(abs_edges_g=[], sigma_factor=[1.0], z_knots=[0.0, 1.0], p_right=[0.9, 0.6])


def test_apply_is_nan_off_the_disk_and_bounded():
    cal = Calibration(abs_edges_g=[20.0], sigma_factor=[10.0, 30.0], z_knots=[0.0, 3.0], p_right=[0.5, 0.95])
    bz = np.array([np.nan, 0.0, 15.0, -300.0], np.float32)
    sigma, conf = cal.apply(bz)
    assert np.isnan(sigma[0]) and np.isnan(conf[0])
    assert sigma[1:].tolist() == [10.0, 10.0, 30.0]
    assert conf[1] == pytest.approx(0.5) and conf[3] == pytest.approx(0.95)


def test_fit_gives_68_percent_coverage_and_calibrated_confidence_out_of_sample():
    bz, s, t = _synthetic(seed=0)
    cal = fit(bz, s, t)
    bz2, s2, t2 = _synthetic(seed=1)
    sigma, conf = cal.apply(bz2, s2)
    scores = calibration_scores(bz2, sigma, conf, t2)
    assert 0.66 < scores["coverage"] < 0.70
    assert scores["ece"] < 0.01 and scores["auroc"] > 0.7 and scores["decile_ratio"] > 2
    assert passes_gate(scores) == []


def test_pav_makes_a_sequence_non_decreasing_keeping_its_weighted_mean():
    out = pav([0.6, 0.5, 0.7, 0.65], [1, 1, 2, 2])
    assert out == sorted(out)
    assert np.average(out, weights=[1, 1, 2, 2]) == pytest.approx(np.average([0.6, 0.5, 0.7, 0.65], weights=[1, 1, 2, 2]))


def test_auroc_of_a_perfect_and_of_a_useless_ranking():
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True])) == 1.0
    rng = np.random.default_rng(0)
    assert abs(auroc(rng.random(20_000), rng.random(20_000) > 0.5) - 0.5) < 0.02


def test_scores_use_only_pixels_with_real_field():
    truth = np.array([5.0, -50.0, 60.0, np.nan], np.float32)
    bz = np.array([-10.0, -40.0, -60.0, 10.0], np.float32)
    scores = calibration_scores(bz, np.full(4, 15.0), np.full(4, 0.5), truth)
    assert scores["n"] == 2 and scores["sign_right"] == 0.5 and scores["coverage"] == 0.5


def test_gate_names_each_failure():
    bad = {"ece": 0.2, "coverage": 0.9, "auroc": 0.5, "decile_ratio": 1.0}
    assert len(passes_gate(bad)) == 4
