"""Fit the uncertainty calibration on val, and measure it honestly.

The calibration (:class:`service.science.uncertainty.Calibration`) is fitted on the val
pixels whose real field exceeds 20 G (the population the figures are judged on). Its
figures are reported twice: out of sample (fitted on the first half of the val days in
time, scored on the second half: what to expect on unseen days) and in sample (fitted and
scored on all val days: the calibration that ships). The gate reads the out-of-sample ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.science.uncertainty import Calibration, calibration_scores, fit, reliability


def _scores(cal: Calibration, px: dict[str, np.ndarray], sel: np.ndarray) -> dict[str, float]:
    sigma, conf = cal.apply(px["bz"][sel], px["sigma"][sel])
    return calibration_scores(px["bz"][sel], sigma, conf, px["truth"][sel])


def calibrate(px: dict[str, np.ndarray]) -> tuple[Calibration, dict[str, Any]]:
    """``(calibration fitted on all days, figures)`` from :func:`training.nowcast.evaluate.collect` pixels."""
    days = np.unique(px["day"])
    first = np.isin(px["day"], days[: len(days) // 2])
    half = fit(px["bz"][first], px["sigma"][first], px["truth"][first])
    full = fit(px["bz"], px["sigma"], px["truth"])
    everything = np.ones_like(first)
    sigma, conf = full.apply(px["bz"], px["sigma"])
    right = np.sign(px["bz"]) == np.sign(px["truth"])
    return full, {
        "out_of_sample": _scores(half, px, ~first),
        "in_sample": _scores(full, px, everything),
        "reliability": reliability(conf, right),
        "n_days": int(len(days)),
        "fit": "first half of the val days in time -> second half (out of sample); all val days (shipped)",
    }


def reliability_png(figures: dict[str, Any], path: Any, title: str) -> None:
    """The reliability diagram of CONFIDENCE (shipped calibration, val) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = figures["reliability"]
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=100)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    ax.plot([p["confidence"] for p in pts], [p["right"] for p in pts], "o-", label="synmag CONFIDENCE")
    ax.set(xlim=(0.4, 1.0), ylim=(0.4, 1.0), xlabel="CONFIDENCE (mean in bin)",
           ylabel="fraction of right signs", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
