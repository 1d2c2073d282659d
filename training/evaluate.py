"""Score generators on val, in Gauss, beside the two baselines, and write the run report.

For each val day: the model's prediction on the full 1024x1024 frame (eval mode,
float32), converted with ``preprocess.model_to_gauss`` and NaN off the disk (what
``preprocess.postprocess`` does in the service); the truth is the HMI map in
Gauss. Both the model and the baselines are scored by
``service.science.metrics.score`` and ``score_regions`` with the same active-region
boxes (found on the truth):

* ``zero``: the zero map (``rotation.zero_baseline``);
* ``persistence``: the previous day's magnetogram rotated differentially to this
  day (``rotation.rotate_to``); the first val day's previous day is the last
  train day.

Per-day scores are aggregated to ``{"mean", "sd", "n"}`` over the days where the
metric is defined (``ar_*`` need at least one active region; ``r`` of the zero map
is never defined). Model selection among checkpoints: the largest
``r_bin8 + ar_ppa["20"]`` (the two metrics of the promotion gate) on val.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.science import metrics, preprocess, rotation
from service.science.metric_table import METRICS
from service.science.output_scaling import DEFAULT as LINEAR_200
from service.science.output_scaling import OutputScaling
from service.science.regions import Region, detect_regions
from training.data import Day, read_halpha, read_target_gauss, split_days

METHODS = ("model", "zero", "persistence")
BASELINES = ("zero", "persistence")
# Scalar keys of score()/score_regions() that are aggregated; PPA dicts come on top.
# Averaged over days: the metric table's scalar metrics and a few diagnostics beside them.
SCALAR_KEYS = tuple(m.key for m in METRICS if "." not in m.key) + ("netflux_delta_frac", "n_regions")
PPA_KEYS = ("ppa", "ar_ppa")
# Gao et al. (2023), test split, Model B (chronological) / Model A (shuffled), for the report.
# Their PSNR/SSIM/CC come from code with the defects listed in the data README (CC is
# (1 + r) / 2 after 8x8 binning, SSIM on a 1-D raster): not comparable one to one.
PAPER = {
    "model_B": {"psnr": 21.77, "ssim": 0.75, "cc_bin8": 0.85, "ar_psnr": 14.51, "ar_ssim": 0.34,
                "ar_ppa": {"0": 0.61, "5": 0.65, "10": 0.67, "20": 0.70, "30": 0.71, "40": 0.72, "50": 0.72}},
    "model_A": {"psnr": 22.21, "ssim": 0.76, "cc_bin8": 0.85, "ar_psnr": 14.83, "ar_ssim": 0.38,
                "ar_ppa": {"0": 0.59, "5": 0.62, "10": 0.64, "20": 0.66, "30": 0.67, "40": 0.68, "50": 0.68}},
}
GEOMETRY = metrics.DiskGeometry(preprocess.MODEL_CENTER, preprocess.MODEL_RADIUS_PX)


# ---------------------------------------------------------------------------
# val set with cached baselines
# ---------------------------------------------------------------------------
@dataclass
class ValDay:
    time: str
    x: np.ndarray  # model input units, float32 (H, W)
    truth: np.ndarray  # Gauss, float32, NaN off the disk
    regions: list[Region]
    prev_time: str


@dataclass
class ValSet:
    """The val days to score, their baselines' predictions and scores (computed once)."""

    days: list[ValDay]
    subset: bool
    n_available: int
    baseline_preds: dict[str, list[np.ndarray]] = field(default_factory=dict)
    baseline_scores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return preprocess.model_disk_mask()


def pick_days(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all when k is 0 or >= n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def truth_gauss(day: Day) -> np.ndarray:
    gauss = read_target_gauss(day)
    gauss[~preprocess.model_disk_mask()] = np.nan
    return gauss


def load_valset(
    data_dir: str | Path,
    eval_days: int = 0,
    splits: dict[str, list[Day]] | None = None,
    *,
    score_baselines: bool = True,
) -> ValSet:
    """Read val (``eval_days`` of them spread over the split, 0 = all) and its baselines.

    The baselines' maps are always made; ``score_baselines=False`` skips scoring them
    (every metric on every day, minutes on the whole split) for callers that only
    need the maps, such as ``synmag-train diagnose``.
    """
    splits = splits or split_days(data_dir)
    val, train = splits["val"], splits["train"]
    chosen = pick_days(len(val), eval_days)
    mask = preprocess.model_disk_mask()
    days: list[ValDay] = []
    persistence: list[np.ndarray] = []
    for i in chosen:
        day = val[i]
        prev = val[i - 1] if i > 0 else train[-1]
        if i == 0 and prev.time >= day.time:
            raise ValueError("the last train day must precede the first val day")
        truth = truth_gauss(day)
        x = preprocess.halpha_to_model(read_halpha(day))
        days.append(ValDay(day.time, x, truth, detect_regions(np.nan_to_num(truth), mask), prev.time))
        persistence.append(rotation.rotate_to(truth_gauss(prev), prev.time, day.time, GEOMETRY))
    vs = ValSet(days=days, subset=len(chosen) < len(val), n_available=len(val))
    vs.baseline_preds = {
        "zero": [rotation.zero_baseline(d.truth) for d in days],
        "persistence": persistence,
    }
    if not score_baselines:
        return vs
    vs.baseline_scores = {
        name: [score_day(pred, d) for pred, d in zip(preds, days, strict=True)]
        for name, preds in vs.baseline_preds.items()
    }
    for entry, d in zip(vs.baseline_scores["persistence"], days, strict=True):
        entry["prev_time"] = d.prev_time  # the day that was rotated forward
    return vs


def score_day(pred_gauss: np.ndarray, day: ValDay) -> dict[str, Any]:
    """Full-disk and active-region scores of one prediction (Gauss) against the day's truth."""
    mask = preprocess.model_disk_mask()
    full = metrics.score(pred_gauss, day.truth, mask, GEOMETRY)
    regions = metrics.score_regions(pred_gauss, day.truth, mask, GEOMETRY, regions=day.regions)
    regions.pop("regions", None)  # per-box listing: kept out of the summary
    return {"time": day.time, **full, **regions}


# ---------------------------------------------------------------------------
# model predictions
# ---------------------------------------------------------------------------
@torch.no_grad()
def predict_gauss(
    generator: torch.nn.Module, x: np.ndarray, device: str | torch.device = "cpu", scaling: OutputScaling = LINEAR_200
) -> np.ndarray:
    """Full-frame prediction in Gauss, NaN off the disk (as ``preprocess.postprocess``)."""
    return output_gauss(generator(model_input(x, device)), scaling)


def model_input(x: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """A frame (H, W) in model units as the generator's float32 input (1, 1, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(device)


def output_gauss(y: torch.Tensor, scaling: OutputScaling = LINEAR_200) -> np.ndarray:
    """A generator output (1, 1, H, W) in model units -> Gauss (per ``scaling``), NaN off the disk."""
    gauss = scaling.to_gauss(y[0, 0].float().cpu().numpy())
    gauss[~preprocess.model_disk_mask(size=gauss.shape[0])] = np.nan
    return gauss


def evaluate_generator(
    generator: torch.nn.Module, valset: ValSet, device: str | torch.device = "cpu", keep_preds: int = 0,
    scaling: OutputScaling = LINEAR_200,
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Per-day model scores (and the first ``keep_preds`` predictions, for figures)."""
    module = getattr(generator, "_orig_mod", generator)
    was_training = module.training
    module.eval()
    scores, preds = [], []
    try:
        for i, day in enumerate(valset.days):
            pred = predict_gauss(module, day.x, device, scaling)
            scores.append(score_day(pred, day))
            if i < keep_preds:
                preds.append(pred)
    finally:
        module.train(was_training)
    return scores, preds


# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------
def _stats(values: Sequence[float]) -> dict[str, Any]:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "sd": None, "n": 0}
    arr = np.asarray(finite)
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else 0.0, "n": int(arr.size)}


def aggregate(day_scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sd and count over days of every scalar and PPA metric."""
    out: dict[str, Any] = {k: _stats([s.get(k, math.nan) for s in day_scores]) for k in SCALAR_KEYS}
    for key in PPA_KEYS:
        out[key] = {
            str(t): _stats([s[key][str(t)] for s in day_scores])
            for t in metrics.PPA_THRESHOLDS_G
        }
    return out


def summarise(valset: ValSet, model_scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics block stored with a version: model, baselines and what was scored."""
    return {
        "split": "val",
        "n_days": len(valset.days),
        "n_days_available": valset.n_available,
        "subset": valset.subset,
        "first_day": valset.days[0].time,
        "last_day": valset.days[-1].time,
        "model": aggregate(model_scores),
        "baselines": {name: aggregate(valset.baseline_scores[name]) for name in BASELINES},
    }


def selection_score(summary: dict[str, Any]) -> float:
    """Model-selection criterion on val: mean r_bin8 + mean AR PPA at 20 G (NaN counts as 0)."""
    def mean(block: dict[str, Any]) -> float:
        value = block.get("mean")
        return float(value) if value is not None else 0.0

    return mean(summary["model"]["r_bin8"]) + mean(summary["model"]["ar_ppa"]["20"])


def short(summary: dict[str, Any]) -> str:
    """One progress line: the gate metrics of model and baselines."""
    def m(block: dict[str, Any], key: str, sub: str | None = None) -> str:
        v = (block[key][sub] if sub else block[key])["mean"]
        return "nan" if v is None else f"{v:.3f}"

    parts = []
    for name, block in [("model", summary["model"]), *summary["baselines"].items()]:
        parts.append(f"{name} r_bin8 {m(block, 'r_bin8')} ar_ppa20 {m(block, 'ar_ppa', '20')} "
                     f"psnr {m(block, 'psnr')}")
    return " | ".join(parts)


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def _fmt(block: dict[str, Any]) -> str:
    if block["mean"] is None:
        return "n/a"
    return f"{block['mean']:.3f} ± {block['sd']:.3f}"


def metric_table(summary: dict[str, Any]) -> list[list[str]]:
    """Rows like the paper's Table 1 (+ ours): metric, model, zero, persistence."""
    blocks = [summary["model"], summary["baselines"]["zero"], summary["baselines"]["persistence"]]
    rows = [["metric", "model", "zero map", "rotated persistence"]]
    for metric in METRICS:
        if "." in metric.key:  # the PPA family: ppa_table
            continue
        label = metric.label + (f" ({metric.unit})" if metric.unit else "")
        rows.append([label] + [_fmt(b[metric.key]) for b in blocks])
    return rows


def ppa_table(summary: dict[str, Any]) -> list[list[str]]:
    """Rows like the paper's Table 2: PPA vs threshold, full disk and AR, + the paper's Model B."""
    blocks = [summary["model"], summary["baselines"]["zero"], summary["baselines"]["persistence"]]
    rows = [["|B| > (G)", "model", "zero", "persistence", "model AR", "zero AR", "persistence AR",
             "paper B AR (test)"]]
    for t in metrics.PPA_THRESHOLDS_G:
        k = str(t)
        rows.append([k] + [_fmt(b["ppa"][k]) for b in blocks] + [_fmt(b["ar_ppa"][k]) for b in blocks]
                    + [f"{PAPER['model_B']['ar_ppa'][k]:.2f}"])
    return rows


def _markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    valset: ValSet,
    summary: dict[str, Any],
    model_preds: Sequence[np.ndarray],
    context: dict[str, Any],
    model_day_scores: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``report.json``, ``report.md`` and PNG figures in ``out_dir``; returns the report dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "examples": _figure_examples(out / "examples.png", valset, model_preds),
        "ppa": _figure_ppa(out / "ppa_vs_threshold.png", summary),
        "table": _figure_table(out / "metrics_table.png", summary),
    }
    report = {
        **context,
        "metrics": summary,
        "paper_reference": PAPER,
        "per_day": {"model": list(model_day_scores), **valset.baseline_scores},
        "figures": {k: v.name for k, v in figures.items() if v is not None},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from service.db import json_safe

    (out / "report.json").write_text(json.dumps(json_safe(report), indent=1, sort_keys=True))
    note = "" if not valset.subset else (
        f"\n**Subset:** {len(valset.days)} of {valset.n_available} val days (evenly spread).\n")
    md = (f"# Run {context.get('run', '')}\n{note}\n## Metrics on val (mean ± sd over days)\n\n"
          f"{_markdown(metric_table(summary))}\n\n## Pixel polarity accuracy (PPA)\n\n"
          f"{_markdown(ppa_table(summary))}\n\nPaper values are on their test split with their "
          f"metric code; ours are on val, in Gauss, 2-D SSIM, Pearson r.\n")
    (out / "report.md").write_text(md)
    return report


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display on servers or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _pyplot().close(fig)
    return path


def _figure_examples(path: Path, valset: ValSet, preds: Sequence[np.ndarray]) -> Path | None:
    if not preds:
        return None
    plt = _pyplot()

    n = len(preds)
    cols = ["H-alpha", "HMI (truth)", "model", "rotated persistence", "zero map"]
    fig, axes = plt.subplots(n, len(cols), figsize=(3 * len(cols), 3 * n), squeeze=False)
    for i, pred in enumerate(preds):
        day = valset.days[i]
        panels = [day.x, day.truth, pred, valset.baseline_preds["persistence"][i],
                  valset.baseline_preds["zero"][i]]
        for j, (ax, img) in enumerate(zip(axes[i], panels, strict=True)):
            # Row 0 of the model frame is solar south: origin "lower" puts north up.
            if j == 0:
                ax.imshow(img, cmap="gray", vmin=-1, vmax=1, origin="lower")
            else:
                ax.imshow(img, cmap="gray", vmin=-200, vmax=200, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j])
        axes[i][0].set_ylabel(day.time[:10])
    fig.suptitle("val days, field in Gauss (grey scale ±200 G)")
    return _save(fig, path)


def _figure_ppa(path: Path, summary: dict[str, Any]) -> Path:
    plt = _pyplot()

    th = list(metrics.PPA_THRESHOLDS_G)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    blocks = {"model": summary["model"], **summary["baselines"]}
    for ax, key, title in [(axes[0], "ppa", "full disk"), (axes[1], "ar_ppa", "active regions")]:
        for name, block in blocks.items():
            means = [block[key][str(t)]["mean"] for t in th]
            sds = [block[key][str(t)]["sd"] for t in th]
            ys = [np.nan if m is None else m for m in means]
            es = [0.0 if s is None else s for s in sds]
            ax.errorbar(th, ys, yerr=es, marker="o", capsize=3, label=name)
        if key == "ar_ppa":
            ax.plot(th, [PAPER["model_B"]["ar_ppa"][str(t)] for t in th], "k--", label="paper model B (test)")
        ax.set_xlabel("|B_truth| threshold (G)")
        ax.set_ylabel("PPA")
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _figure_table(path: Path, summary: dict[str, Any]) -> Path:
    plt = _pyplot()

    rows = metric_table(summary)
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(rows) + 0.5))
    ax.axis("off")
    table = ax.table(cellText=rows[1:], colLabels=rows[0], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    return _save(fig, path)
