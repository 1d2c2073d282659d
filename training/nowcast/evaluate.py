"""The nowcast on val at full resolution, by prior age, beside persistence and the H-alpha-only model.

For each val day and prior age (1, 2, 3, 5, 7 days), the prior is the HMI of the day that
many days earlier rotated to the day's time by :func:`service.science.prior.rotate_prior`
(the serving code). Three maps are scored against the day's HMI in Gauss on the disk:
the nowcast, persistence (the same rotated prior, 0 G where it saw nothing) and the
H-alpha-only generator (the fallback product). Scores: ``r_bin8`` and active-region
``ar_ppa20`` (the bar's two), from ``service.science.metrics``.

:func:`collect` also returns the pixels the uncertainty calibration is fitted and checked on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from service.science import metrics, preprocess
from service.science.prior import rotate_prior
from service.science.regions import detect_regions
from service.science.uncertainty import strong_pixels
from training.data import list_webp_days, read_halpha, read_target_gauss
from training.nowcast.cache import GEOMETRY, MAX_AGE_DAYS

AGES = (1, 2, 3, 5, 7)
METHODS = ("nowcast", "persistence", "halpha")
PIXEL_STRIDE = 3  # every 3rd population pixel kept for calibration (about 8 M in all)


def lean_scores(pred: np.ndarray, truth: np.ndarray, disk: np.ndarray, ar: np.ndarray) -> dict[str, float]:
    """r_bin8 and AR PPA(20 G) as ``metrics.score`` / ``score_regions`` compute them."""
    p, t, valid = metrics._prepare(pred, truth, disk)
    r8, _ = metrics._binned_r(p, t, valid)
    sel = ar & valid
    acc, _ = metrics.ppa(p[sel], t[sel]) if sel.any() else ({"20": float("nan")}, None)
    return {"r_bin8": r8, "ar_ppa20": acc["20"]}


@dataclass
class Pixels:
    """Population pixels of one kind of product, for calibration: published B, raw sigma, truth, day."""

    bz: list[np.ndarray] = field(default_factory=list)
    sigma: list[np.ndarray] = field(default_factory=list)
    truth: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    activity: list[np.ndarray] = field(default_factory=list)

    def add(self, bz: np.ndarray, sigma: np.ndarray, truth: np.ndarray, day: int) -> None:
        from service.science.uncertainty import activity

        sel = strong_pixels(truth, bz)
        idx = np.flatnonzero(sel)[::PIXEL_STRIDE]
        self.bz.append(bz.ravel()[idx])
        self.sigma.append(np.broadcast_to(sigma, bz.shape).ravel()[idx])
        self.truth.append(truth.ravel()[idx])
        self.day.append(np.full(idx.size, day, np.int32))
        self.activity.append(activity(bz).ravel()[idx])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(getattr(self, k)) for k in ("bz", "sigma", "truth", "day", "activity")}


@torch.no_grad()
def nowcast_gauss(models: Sequence[torch.nn.Module], x: np.ndarray, base: np.ndarray, prior_g: np.ndarray,
                  seen: np.ndarray, age_h: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each model's (bz, sigma) in Gauss, NaN off the disk, as the exported graph computes them."""
    t = [torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None] for a in
         (x, base, preprocess.gauss_to_model(np.nan_to_num(prior_g)), seen.astype(np.float32))]
    age = torch.tensor([[age_h]], dtype=torch.float32)
    sign = torch.ones((1, 1))  # val days are of the generator's own cycle
    disk = preprocess.model_disk_mask()
    out = []
    for m in models:
        bz, sigma = m(*t, age, sign)
        bz_g = np.clip(bz[0, 0].numpy() * preprocess.GAUSS_SCALE, -preprocess.GAUSS_SCALE, preprocess.GAUSS_SCALE)
        sigma_g = sigma[0, 0].numpy() * preprocess.GAUSS_SCALE
        out.append((np.where(disk, bz_g, np.nan).astype(np.float32), np.where(disk, sigma_g, np.nan).astype(np.float32)))
    return out


def collect(models: Sequence[torch.nn.Module], data_dir: Path, cache: Path, ages: Sequence[int] = AGES,
            limit: int | None = None, pixel_seed: int = 0) -> dict:
    """Scores per (age, day, method[, seed]) over the val split, and the calibration pixels of
    model ``pixel_seed`` (and of the H-alpha-only model)."""
    days = list_webp_days(Path(data_dir) / "val")
    z = np.load(Path(cache) / "val.npz")
    if list(z["times"]) != [d.time for d in days]:
        raise ValueError("the val cache is not of these days: rebuild it")
    base_full = np.load(Path(cache) / "val.base1024.npy", mmap_mode="r")
    links = z["links"]
    disk = preprocess.model_disk_mask()
    truths: dict[int, np.ndarray] = {}

    def truth_of(i: int) -> np.ndarray:
        if i not in truths:
            truths[i] = read_target_gauss(days[i])
        return truths[i]

    rows: list[dict] = []
    pixels = {"nowcast": Pixels(), "halpha": Pixels()}
    n = len(days) if limit is None else min(limit, len(days))
    for i in range(n):
        truth = np.where(disk, truth_of(i), np.nan).astype(np.float32)
        ar = np.zeros_like(disk)
        for reg in detect_regions(np.nan_to_num(truth), disk):
            ar[reg.slice_y, reg.slice_x] = True
        x = preprocess.halpha_to_model(read_halpha(days[i]))
        base = np.asarray(base_full[i], np.float32)
        halpha_g = np.where(disk, base * preprocess.GAUSS_SCALE, np.nan).astype(np.float32)
        halpha_scores = lean_scores(halpha_g, truth, disk, ar)  # the same map at every prior age
        rows.append({"day": days[i].time, "age": 0, "method": "halpha", **halpha_scores})
        pixels["halpha"].add(halpha_g, np.float32(1.0), truth, i)
        for age in ages:
            j = links[i][age - 1] if age <= MAX_AGE_DAYS else -1
            if j < 0:
                continue
            prior_g, seen = rotate_prior(truth_of(j), days[j].time, days[i].time, GEOMETRY)
            age_h = (days[i].mjd - days[j].mjd) * 24.0
            rows.append({"day": days[i].time, "age": age, "method": "persistence",
                         **lean_scores(np.nan_to_num(prior_g), truth, disk, ar)})
            rows.append({"day": days[i].time, "age": age, "method": "halpha", **halpha_scores})
            for seed, (bz, sigma) in enumerate(nowcast_gauss(models, x, base, prior_g, seen, age_h)):
                rows.append({"day": days[i].time, "age": age, "method": "nowcast", "seed": seed,
                             **lean_scores(bz, truth, disk, ar)})
                if seed == pixel_seed:
                    pixels["nowcast"].add(bz, sigma, truth, i)
        truths.pop(i - MAX_AGE_DAYS - 1, None)
        if i % 10 == 0:
            print(f"evaluate: day {i}/{n}", flush=True)
    return {"rows": rows, "pixels": {k: v.arrays() for k, v in pixels.items()}}


def table(rows: list[dict], ages: Sequence[int] = AGES) -> list[dict]:
    """Mean per (age, method): nowcast as mean and sd over seeds of the per-seed day means."""
    out = []
    for age in (*ages, 0):
        entry: dict = {"age_days": age}
        for method in METHODS:
            sel = [r for r in rows if r["age"] == age and r["method"] == method]
            if not sel:
                continue
            for key in ("r_bin8", "ar_ppa20"):
                if method == "nowcast":
                    seeds = sorted({r["seed"] for r in sel})
                    per = [np.nanmean([r[key] for r in sel if r["seed"] == s]) for s in seeds]
                    entry[f"{method}_{key}"] = float(np.mean(per))
                    entry[f"{method}_{key}_sd"] = float(np.std(per, ddof=1)) if len(per) > 1 else float("nan")
                    entry["seeds"] = len(seeds)
                else:
                    entry[f"{method}_{key}"] = float(np.nanmean([r[key] for r in sel]))
            entry["n_days"] = len({r["day"] for r in sel})
        if "n_days" in entry:  # an age no evaluated day has a prior of (a short --limit) has no row
            out.append(entry)
    return out


def markdown(tab: list[dict]) -> str:
    """The model card's val table."""
    lines = ["| prior age | days | nowcast r_bin8 | persistence | H-alpha only | nowcast AR PPA(20 G) | persistence | H-alpha only |",
             "|---|---|---|---|---|---|---|---|"]
    for e in tab:
        if e["age_days"] == 0:
            lines.append(f"| no prior (served by the H-alpha-only model) | {e['n_days']} | - | - | {e['halpha_r_bin8']:.3f} "
                         f"| - | - | {e['halpha_ar_ppa20']:.3f} |")
            continue
        sd = e.get("nowcast_r_bin8_sd", float("nan"))
        sd2 = e.get("nowcast_ar_ppa20_sd", float("nan"))
        lines.append(f"| {e['age_days']} d | {e['n_days']} | {e['nowcast_r_bin8']:.3f} +- {sd:.3f} | "
                     f"{e['persistence_r_bin8']:.3f} | {e['halpha_r_bin8']:.3f} | {e['nowcast_ar_ppa20']:.3f} +- {sd2:.3f} | "
                     f"{e['persistence_ar_ppa20']:.3f} | {e['halpha_ar_ppa20']:.3f} |")
    return "\n".join(lines)
