"""``synmag-train ensemble``: one version made of several trained runs.

Takes the run folders that ``make retrain`` wrote (each with ``report/report.json``
and its checkpoints), rebuilds the generator each run selected on val, and goes
through the same chain as a single run: val scores beside the baselines (for each
smoothing asked for; the best ``r_bin8 + ar_ppa["20"]`` on val is kept; optionally a
flux gain fitted on val, ``training.ensemble``; the members run over val once and every
smoothing and the gain are scored on that one set of outputs), ONNX export
(float16 weights on request, to keep the bundled file under 32 MB), parity against
torch on real val frames, report, registration and gate. The run folder it writes
looks like a retrain run's, so ``synmag-train card --ship`` ships it the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.errors import UsageError
from service.science.cycles import cycle_of
from service.science.output_scaling import DEFAULT as LINEAR_200
from training.ensemble import Ensemble, finish, gaussian_kernel
from training.evaluate import (
    ValSet,
    load_valset,
    model_input,
    output_gauss,
    score_day,
    selection_score,
    short,
    summarise,
    write_report,
)
from training.export import export_onnx, git_commit, parity
from training.model_card import load_report
from training.retrain import (
    N_EXAMPLE_DAYS,
    N_PARITY_FRAMES,
    RetrainResult,
    log_stderr,
    open_registry,
)
from training.train import generator_from_checkpoint


def selected_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of the epoch a retrain run selected on val (its report says which)."""
    run = Path(run_dir)
    lineage = load_report(run)["lineage"]
    epoch = int(lineage["selected"]["epoch"])
    # The final epoch is saved as last.pt, every other evaluated one as epochNNNN.pt.
    name = "last.pt" if epoch == int(lineage["trained"]["epochs"]) else f"epoch{epoch:04d}.pt"
    path = run / "checkpoints" / name
    if not path.is_file():
        raise UsageError(f"{run}: selected checkpoint {path} is missing")
    return path


@torch.no_grad()
def val_means(ensemble: Ensemble, valset: ValSet) -> list[torch.Tensor]:
    """The ensemble's unsmoothed mean on every val day: the one expensive pass (model units)."""
    return [ensemble.mean_of_views(model_input(day.x)) for day in valset.days]


def score_finish(
    means: Sequence[torch.Tensor], valset: ValSet, sigma_px: float, gain: float = 1.0
) -> dict[str, Any]:
    """Val scores of ``means`` smoothed at ``sigma_px`` and scaled by ``gain`` (as the graph does).

    Returns ``summary``, ``selection`` (the retrain selection score), per-day ``scores``
    and the first ``N_EXAMPLE_DAYS`` predictions in Gauss (``preds``).
    """
    kernel = gaussian_kernel(sigma_px)
    scores, preds = [], []
    for i, (y, day) in enumerate(zip(means, valset.days, strict=True)):
        gauss = output_gauss(finish(y, kernel, gain))
        scores.append(score_day(gauss, day))
        if i < N_EXAMPLE_DAYS:
            preds.append(gauss)
    summary = summarise(valset, scores)
    return {"summary": summary, "selection": selection_score(summary), "scores": scores, "preds": preds}


def build_ensemble(
    member_runs: Sequence[str | Path],
    data_dir: str | Path,
    name: str,
    out_dir: str | Path = "runs",
    *,
    ns_view: bool = True,
    smooth_sigmas_px: Sequence[float] = (0.0,),
    calibrate_flux: bool = False,
    weights: str = "float32",
    eval_days: int = 0,
    promote: bool = False,
    settings: Any = None,
    log=log_stderr,
) -> RetrainResult:
    """Evaluate, export, register and gate the ensemble of ``member_runs``; see the module docstring."""
    t0 = time.perf_counter()
    reports = [load_report(r) for r in member_runs]
    shas = {r["lineage"]["train_data_sha256"] for r in reports}
    if len(shas) != 1:
        raise UsageError("members were trained on different data (train_data_sha256 differ)")
    members, configs = [], []
    for run in member_runs:
        generator, cfg, _ = generator_from_checkpoint(selected_checkpoint(run))
        members.append(generator)
        configs.append(cfg.to_dict())
        if cfg.scaling != LINEAR_200:  # the smoothing, gain and metrics below decode linear 200 G
            raise UsageError(f"{run}: output_scaling {cfg.output_scaling!r}; ensembles take linear:200 members only")
    valset = load_valset(data_dir, eval_days)
    # One pass of the members over val; every smoothing (and the gain) is scored on its output.
    means = val_means(Ensemble(members, ns_view=ns_view).eval(), valset)
    sweep = {float(s): score_finish(means, valset, float(s)) for s in dict.fromkeys(smooth_sigmas_px)}
    sigma = max(sweep, key=lambda s: sweep[s]["selection"])
    for s, entry in sweep.items():
        log(f"ensemble of {len(members)} (ns_view {ns_view}, smoothing {s:g} px) on val: "
            f"{short(entry['summary'])} | selection {entry['selection']:.3f}{' <- chosen' if s == sigma else ''}")
    summary, scores, preds = (sweep[sigma][k] for k in ("summary", "scores", "preds"))
    gain = 1.0
    if calibrate_flux:
        # The unsigned flux (mu >= 0.3) of the mean falls short of HMI's: scale it back.
        gain = 1.0 / summary["model"]["tumf_ratio"]["mean"]
    ensemble = Ensemble(members, ns_view=ns_view, smooth_sigma_px=sigma, gain=gain).eval()
    if gain != 1.0:
        final = score_finish(means, valset, sigma, gain)
        summary, scores, preds = final["summary"], final["scores"], final["preds"]
        log(f"flux gain {gain:.3f} (unsigned flux ratio {sweep[sigma]['summary']['model']['tumf_ratio']['mean']:.3f}"
            f" -> {summary['model']['tumf_ratio']['mean']:.3f}): {short(summary)}")

    spec = {"members": [r["version"] for r in reports], "ns_view": ns_view, "smooth_sigma_px": sigma,
            "gain": gain, "weights": weights,
            "smoothing_sweep": {f"{s:g}": {"r_bin8": e["summary"]["model"]["r_bin8"]["mean"],
                                           "ar_ppa_20": e["summary"]["model"]["ar_ppa"]["20"]["mean"],
                                           "selection": e["selection"]} for s, e in sweep.items()}}
    config = {**configs[0], "name": name, "extra": {"ensemble": spec}}
    version = f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    commit = git_commit()
    out = Path(out_dir) / name
    onnx_path = export_onnx(
        ensemble, out / f"{version}.onnx",
        {"config": config, "train_data_sha256": shas.pop(), "git_commit": commit, "version": version,
         "solar_cycle": cycle_of(reports[0]["lineage"]["train_days"]["last"])},  # as training.data.model_cycle
        weights=weights,
    )
    parity_result = parity(ensemble, onnx_path, np.stack([d.x for d in valset.days[:N_PARITY_FRAMES]]))
    log(f"export {onnx_path.name} ({onnx_path.stat().st_size / 2**20:.1f} MB, {weights} weights): "
        f"parity max |torch - onnx| {parity_result['max_abs_diff_g']:.2e} G")

    first = reports[0]["lineage"]
    trained = [r["lineage"]["trained"] for r in reports]
    lineage = {
        "train_data_sha256": first["train_data_sha256"],
        "git_commit": commit,
        "config_name": name,
        "seed": None,
        "order": first["order"],
        "data_dir": str(Path(data_dir).resolve()),
        "train_days": first["train_days"],
        "val_days": {"n": len(valset.days), "of": valset.n_available, "subset": valset.subset},
        "selected": {"members": [r["lineage"]["selected"] for r in reports]},
        "trained": {"steps": sum(t["steps"] for t in trained), "epochs": trained[0]["epochs"],
                    "wall_s": sum(t["wall_s"] for t in trained), "device": trained[0]["device"],
                    "crops_per_s": float(np.mean([t["crops_per_s"] for t in trained]))},
        "ensemble": spec,
    }
    context = {"run": name, "version": version, "config": config, "lineage": lineage,
               "parity": parity_result, "ensemble": spec, "smoke": valset.subset,
               "note": f"evaluated on {len(valset.days)} of {valset.n_available} val days" if valset.subset else ""}
    report = write_report(out / "report", valset, summary, preds, context, scores)

    registry = open_registry(settings)
    row = registry.register(onnx_path, metrics=summary, report=report, lineage=lineage,
                            config=config, version=version)
    gate = registry.gate(row.version)
    promoted = bool(promote and gate.passed)
    if promoted:
        registry.promote(row.version)
    log(f"registered {row.version}; gate {'passed' if gate.passed else 'failed: ' + '; '.join(gate.reasons)}"
        f"; total {time.perf_counter() - t0:.0f} s")
    return RetrainResult(row.version, onnx_path, out / "report" / "report.json", gate.as_dict(),
                         promoted, summary)

