"""Per-pixel uncertainty of a product: 1-sigma in Gauss and the probability its sign is right.

One postprocessing step, :meth:`Calibration.apply`, shared by ``synmag process``, the feed
and ``reprocess``, turns what a model gives into the published layers:

- ``SIGMA`` (Gauss): the model's raw sigma (a learned scale head; 1 G for a model without
  one) times a factor looked up by ``|B|`` of the published value. The factors are fitted
  on val so that, in each ``|B|`` bin, 68.3 % of the pixels lie within +-1 sigma.
- ``CONFIDENCE`` (0..1): ``z = |B| / SIGMA`` mapped through a monotone table fitted on val
  (isotonic regression on bins of ``z``) to the frequency with which the published sign
  was right. NaN off the disk.

The population both are fitted and judged on is the disk pixels whose real field exceeds
:data:`STRONG_G` (20 G, above HMI's noise): the sign of a pixel with no field is not a
question a forecaster asks. So CONFIDENCE reads "if there is field here, the probability
that its polarity is the one shown".

The calibration lives in the model's ONNX metadata (``synmag.calibration``, JSON), is
fitted by ``training.nowcast.calibrate`` and checked by the promotion gate
(:data:`GATE`). :func:`calibration_scores` computes the figures the issue's bar, the
model card, the gate and live verification all report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

STRONG_G = 20.0
"""Pixels with ``|B_true|`` above this are the population of every calibration figure."""
COVERAGE_TARGET = 0.6827
ECE_BINS = 10

GATE = {"ece_max": 0.05, "coverage_min": 0.60, "coverage_max": 0.76, "auroc_min": 0.70, "decile_ratio_min": 2.0}
"""What the promotion gate demands of a version's val calibration (the issue's bar)."""


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration (see module docstring); JSON in ``synmag.calibration``.

    Attributes
    ----------
    abs_edges_g : list of float
        Inner edges of the ``|B|`` bins of ``sigma_factor`` (Gauss, increasing).
    sigma_factor : list of float
        One factor per bin (``len(abs_edges_g) + 1``).
    z_knots, p_right : list of float
        The CONFIDENCE table: ``p_right`` at ``z_knots`` (both increasing), linear between,
        constant beyond.
    """

    abs_edges_g: list[float]
    sigma_factor: list[float]
    z_knots: list[float]
    p_right: list[float]
    version: int = 1

    def __post_init__(self) -> None:
        if len(self.sigma_factor) != len(self.abs_edges_g) + 1:
            raise ValueError("sigma_factor needs one value per |B| bin (len(abs_edges_g) + 1)")
        if len(self.z_knots) != len(self.p_right) or not self.z_knots:
            raise ValueError("z_knots and p_right must be non-empty and of equal length")
        if np.any(np.diff(self.z_knots) < 0) or np.any(np.diff(self.p_right) < -1e-12):
            raise ValueError("z_knots and p_right must be non-decreasing")
        if not all(0.0 <= p <= 1.0 for p in self.p_right) or not all(f > 0 for f in self.sigma_factor):
            raise ValueError("p_right must lie in [0, 1] and sigma factors be positive")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        raw = json.loads(text)
        if raw.get("version") != 1:
            raise ValueError(f"unknown calibration version {raw.get('version')!r}")
        return cls(**raw)

    def apply(self, bz_g: np.ndarray, sigma_raw_g: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(sigma_g, confidence)`` of a published map ``bz_g`` (Gauss; NaN off the disk)."""
        bz = np.asarray(bz_g, dtype=np.float32)
        mag = np.abs(bz)
        factor = np.asarray(self.sigma_factor, np.float32)[np.searchsorted(self.abs_edges_g, np.nan_to_num(mag))]
        sigma = (np.asarray(sigma_raw_g, np.float32) * factor).astype(np.float32)
        z = np.nan_to_num(mag / sigma)
        conf = np.interp(z, self.z_knots, self.p_right).astype(np.float32)
        off = ~np.isfinite(bz)
        sigma[off] = np.nan
        conf[off] = np.nan
        return sigma, conf


ACTIVITY_SIGMA_PX = 6.0
"""Scale of :func:`activity`: about the size of a small bipole in the model frame."""


def activity(bz_g: np.ndarray) -> np.ndarray:
    """Local field strength around each pixel: ``|B|`` smoothed (Gaussian, 6 px), NaN-safe."""
    from scipy import ndimage

    mag = np.abs(np.nan_to_num(np.asarray(bz_g, np.float32)))
    return ndimage.gaussian_filter(mag, ACTIVITY_SIGMA_PX, mode="constant").astype(np.float32)


def strong_pixels(truth_g: np.ndarray, bz_g: np.ndarray) -> np.ndarray:
    """The calibration population: finite in both maps and ``|truth| > STRONG_G``."""
    return np.isfinite(truth_g) & np.isfinite(bz_g) & (np.abs(np.nan_to_num(truth_g)) > STRONG_G)


def fit(bz_g: np.ndarray, sigma_raw_g: np.ndarray, truth_g: np.ndarray,
        abs_edges_g: tuple[float, ...] = (5, 10, 20, 35, 60, 100, 150), n_z: int = 24) -> Calibration:
    """Fit a :class:`Calibration` on population pixels (1-D arrays of equal length).

    Sigma: per ``|B|`` bin, the factor that puts 68.3 % of ``|bz - truth| / sigma_raw``
    inside 1. Confidence: bins of ``z`` at equal counts, the frequency of right signs
    in each, made monotone by pool-adjacent-violators.
    """
    bz, s_raw, t = (np.asarray(a, np.float64).ravel() for a in (bz_g, sigma_raw_g, truth_g))
    ratio = np.abs(bz - t) / np.maximum(s_raw, 1e-6)
    which = np.searchsorted(abs_edges_g, np.abs(bz))
    overall = float(np.quantile(ratio, COVERAGE_TARGET))
    factors = []
    for b in range(len(abs_edges_g) + 1):
        sel = which == b
        factors.append(float(np.quantile(ratio[sel], COVERAGE_TARGET)) if sel.sum() >= 200 else overall)
    sigma = s_raw * np.asarray(factors)[which]
    z = np.abs(bz) / sigma
    right = (np.sign(bz) == np.sign(t)).astype(np.float64)
    order = np.argsort(z)
    chunks = np.array_split(order, n_z)
    knots = [float(np.median(z[c])) for c in chunks]
    freq = pav([float(right[c].mean()) for c in chunks], [len(c) for c in chunks])
    return Calibration(abs_edges_g=[float(e) for e in abs_edges_g], sigma_factor=factors,
                       z_knots=knots, p_right=[float(min(1.0, max(0.0, f))) for f in freq])


def pav(values: list[float], weights: list[int]) -> list[float]:
    """Pool-adjacent-violators: the non-decreasing sequence closest to ``values`` (weighted)."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for v, w in zip(values, weights, strict=True):
        blocks.append([v, float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    out: list[float] = []
    for v, _, n in blocks:
        out.extend([v] * n)
    return out


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` separating ``positive`` (Mann-Whitney, ties halved)."""
    from scipy.stats import rankdata

    pos = np.asarray(positive, bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_scores(bz_g: np.ndarray, sigma_g: np.ndarray, conf: np.ndarray, truth_g: np.ndarray) -> dict[str, float]:
    """The bar's figures on the population pixels of one or more maps (any shapes, equal).

    ``ece`` (10 equal-width bins of CONFIDENCE), ``auroc`` (CONFIDENCE ranking right vs
    wrong signs), ``coverage`` (fraction within +-1 SIGMA), ``decile_ratio`` (MAE of the
    largest-SIGMA decile over that of the smallest), ``n`` pixels, ``sign_right`` rate.
    """
    sel = strong_pixels(np.asarray(truth_g), np.asarray(bz_g)) & np.isfinite(sigma_g) & np.isfinite(conf)
    bz, s, c, t = (np.asarray(a, np.float64)[sel] for a in (bz_g, sigma_g, conf, truth_g))
    n = int(bz.size)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "ece": nan, "auroc": nan, "coverage": nan, "decile_ratio": nan, "sign_right": nan}
    right = np.sign(bz) == np.sign(t)
    ece = sum(p["n"] / n * abs(p["right"] - p["confidence"]) for p in reliability(c, right))
    err = np.abs(bz - t)
    lo, hi = np.quantile(s, [0.1, 0.9])
    mae_lo = float(err[s <= lo].mean())
    mae_hi = float(err[s >= hi].mean())
    return {"n": n, "ece": float(ece), "auroc": auroc(c, right), "coverage": float((err <= s).mean()),
            "decile_ratio": mae_hi / mae_lo if mae_lo > 0 else nan, "sign_right": float(right.mean())}


def reliability(conf: np.ndarray, right: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per CONFIDENCE bin: mean confidence, frequency of right signs, pixel count (the diagram's points)."""
    c = np.asarray(conf, np.float64)
    r = np.asarray(right, bool)
    idx = np.minimum((c * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append({"bin": b, "confidence": float(c[m].mean()), "right": float(r[m].mean()), "n": int(m.sum())})
    return out


def passes_gate(scores: dict[str, float]) -> list[str]:
    """The gate's objections to ``scores`` (empty when it passes)."""
    out = []
    if not scores.get("ece", 1.0) <= GATE["ece_max"]:
        out.append(f"ECE {scores.get('ece')} > {GATE['ece_max']}")
    cov = scores.get("coverage", 0.0)
    if not GATE["coverage_min"] <= cov <= GATE["coverage_max"]:
        out.append(f"+-1 sigma coverage {cov} outside {GATE['coverage_min']}..{GATE['coverage_max']}")
    if not scores.get("auroc", 0.0) >= GATE["auroc_min"]:
        out.append(f"AUROC {scores.get('auroc')} < {GATE['auroc_min']}")
    if not scores.get("decile_ratio", 0.0) >= GATE["decile_ratio_min"]:
        out.append(f"sigma decile MAE ratio {scores.get('decile_ratio')} < {GATE['decile_ratio_min']}")
    return out
