"""The whole chain behind ``make retrain``: train, evaluate, export, parity, register, gate.

1. train per the config, scoring every ``eval_every``-epoch checkpoint on val
   (model and both baselines, ``training.evaluate``);
2. select the checkpoint with the best val ``r_bin8 + ar_ppa["20"]``;
3. export it to ONNX with the contract metadata (config, training-data hash,
   git commit, version id) and check ONNX Runtime against torch on real val
   frames (fail above 0.5 G);
4. write the run report (JSON, Markdown, PNG figures);
5. register the version (ONNX + report in the object store, a database row with
   metrics and lineage) through ``service.registry.Registry``;
6. run the promotion gate: promote when it passes, else leave a ``candidate``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.data import data_roots, split_days, training_days_metadata
from training.evaluate import (
    ValSet,
    evaluate_generator,
    load_valset,
    selection_score,
    short,
    summarise,
    write_report,
)
from training.export import export_onnx, git_commit, parity
from training.train import generator_from_checkpoint, load_checkpoint, pick_device, train

N_EXAMPLE_DAYS = 3
N_PARITY_FRAMES = 2


def log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class RetrainResult:
    version: str
    onnx_path: Path
    report_path: Path
    gate: dict[str, Any]
    promoted: bool
    metrics: dict[str, Any]


def retrain(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    promote: bool = True,
    settings: Any = None,
    log=log_stderr,
) -> RetrainResult:
    """Run the chain for ``cfg`` (``cfg.data_dir`` set); see the module docstring."""
    t0 = time.perf_counter()
    all_splits = split_days(cfg.data_dir)
    t = time.perf_counter()
    # The first val day's persistence baseline is the last day of the FULL train split,
    # even when this run trains on fewer days.
    valset = load_valset(cfg.data_dir, cfg.eval_days, all_splits)
    splits = all_splits
    if cfg.train_days:
        splits = {**all_splits, "train": all_splits["train"][: cfg.train_days]}
    log(f"val: {len(valset.days)} of {valset.n_available} days, baselines scored in "
        f"{time.perf_counter() - t:.1f} s")
    device = pick_device(cfg.device)
    best: dict[str, Any] = {}

    def on_checkpoint(path: Path, epoch: int, step: int) -> dict[str, Any]:
        t_eval = time.perf_counter()
        generator, _, _ = generator_from_checkpoint(path)
        generator.to(device)
        scores, preds = evaluate_generator(generator, valset, device, keep_preds=N_EXAMPLE_DAYS,
                                           scaling=cfg.scaling)
        summary = summarise(valset, scores)
        sel = selection_score(summary)
        log(f"val @ epoch {epoch} (step {step}): {short(summary)} | selection {sel:.3f} "
            f"[{time.perf_counter() - t_eval:.0f} s]")
        if not best or sel > best["selection"]:
            # Copy: the checkpoint file under this tag may be overwritten later (last.pt).
            best.update(selection=sel, epoch=epoch, step=step, summary=summary, scores=scores,
                        preds=preds, state=generator.cpu().state_dict())
        return {"selection": sel, "r_bin8": summary["model"]["r_bin8"]["mean"],
                "ar_ppa_20": summary["model"]["ar_ppa"]["20"]["mean"]}

    result = train(cfg, resume=resume, on_checkpoint=on_checkpoint, log=log)
    if not best:
        raise RuntimeError("training produced no evaluated checkpoint")

    # The selected generator, rebuilt from its saved weights.
    generator, _, _ = generator_from_checkpoint(result.checkpoints[-1])
    generator.load_state_dict(best["state"])
    version = f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-s{cfg.seed}"
    train_meta = training_days_metadata(splits["train"])
    commit = git_commit()
    out = result.run_dir
    onnx_path = export_onnx(
        generator,
        out / f"{version}.onnx",
        {
            "config": {**cfg.to_dict(), "selected_epoch": best["epoch"], "selected_step": best["step"]},
            **train_meta,  # its training data's hash, and the solar cycle whose polarity it learned
            "output_scaling": cfg.scaling,  # how its output becomes Gauss (gauss_scale follows)
            "git_commit": commit,
            "version": version,
        },
    )
    frames = np.stack([d.x for d in valset.days[:N_PARITY_FRAMES]])
    parity_result = parity(generator, onnx_path, frames, scaling=cfg.scaling)
    log(f"export {onnx_path.name}: parity max |torch - onnx| {parity_result['max_abs_diff_g']:.2e} G "
        f"on {parity_result['frames']} val frames")

    lineage = {
        "train_data_sha256": train_meta["train_data_sha256"],
        "git_commit": commit,
        "config_name": cfg.name,
        "seed": cfg.seed,
        "order": cfg.order,
        "data_dir": ",".join(str(p.resolve()) for p in data_roots(cfg.data_dir)),
        "train_days": {"n": len(splits["train"]), "first": splits["train"][0].time,
                       "last": splits["train"][-1].time},
        "val_days": {"n": len(valset.days), "of": valset.n_available, "subset": valset.subset},
        "selected": {"epoch": best["epoch"], "step": best["step"], "selection": best["selection"]},
        "trained": {"steps": result.step, "epochs": result.epoch, "wall_s": result.wall_s,
                    "crops_per_s": result.crops_per_s, "device": result.device},
    }
    if resume is not None:
        # wall_s and crops_per_s above cover this process only: say where it started.
        start = load_checkpoint(resume)
        lineage["resumed_from"] = {"checkpoint": str(resume), "epoch": int(start["epoch"]),
                                   "step": int(start["step"]), "config_name": start["config"]["name"]}
    context = {
        "run": cfg.name,
        "version": version,
        "config": cfg.to_dict(),
        "lineage": lineage,
        "parity": parity_result,
        "history": result.history,
        "smoke": cfg.name == "smoke" or bool(cfg.max_steps) or valset.subset,
        "note": _note(cfg, valset),
    }
    report = write_report(out / "report", valset, best["summary"], best["preds"], context, best["scores"])
    report_path = out / "report" / "report.json"

    registry = open_registry(settings)
    row = registry.register(onnx_path, metrics=best["summary"], report=report, lineage=lineage,
                            config=cfg.to_dict(), version=version)
    gate = registry.gate(row.version)
    promoted = False
    if promote and gate.passed:
        registry.promote(row.version)
        promoted = True
    log(f"registered {row.version} (sha256 {row.sha256[:12]}); gate "
        f"{'passed' if gate.passed else 'failed: ' + '; '.join(gate.reasons)}"
        f"{'; promoted to production' if promoted else ''}; total {time.perf_counter() - t0:.0f} s")
    return RetrainResult(row.version, onnx_path, report_path, gate.as_dict(), promoted, best["summary"])


def _note(cfg: TrainConfig, valset: ValSet) -> str:
    parts = []
    if cfg.max_steps or cfg.train_days:
        parts.append(f"short run (max_steps {cfg.max_steps}, train_days {cfg.train_days or 'all'})")
    if valset.subset:
        parts.append(f"evaluated on {len(valset.days)} of {valset.n_available} val days")
    if cfg.name == "smoke":
        parts.append("smoke run: checks the chain, its metrics say nothing about the method")
    return "; ".join(parts)


def open_registry(settings: Any):
    """The registry of ``settings``, or of the environment when None."""
    from service.registry import Registry
    from service.settings import load_settings

    return Registry(settings if settings is not None else load_settings())


def result_json(result: RetrainResult) -> str:
    return json.dumps({"version": result.version, "onnx": str(result.onnx_path),
                       "report": str(result.report_path), "gate": result.gate,
                       "promoted": result.promoted}, default=str)
