"""From trained seeds to shipped files: evaluate on val, calibrate, export, write metrics and card.

``python -m training.nowcast.build --data-dir DATA --cache CACHE --generator GEN.onnx
--seeds run-s0.pt run-s1.pt run-s2.pt --out models/ --version VERSION``

Writes into ``--out``:
- ``<version>.onnx``: the nowcast (generator + seed-averaged head), calibration inside;
- ``<version>.metrics.json``: the registry's format (``model`` = the shipped nowcast over val
  days and prior ages 1-7 d, ``baselines.persistence`` = persistence from the same priors,
  ``baselines.zero``), plus ``by_age`` (the table, seeds as mean and sd) and ``calibration``;
- ``<halpha-version>.onnx`` and ``.metrics.json``: the H-alpha-only generator with its own
  calibration (same weights, new metadata: a new version);
- ``nowcast_card.md`` and reliability diagrams: the model card's nowcast section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.nowcast import evaluate
from training.nowcast.calibrate import calibrate, reliability_png
from training.nowcast.train import load


def summary_block(rows: list[dict], method: str, seed: int | None = None) -> dict[str, Any]:
    """Registry-format block: r_bin8 and ar_ppa 20 over all (day, age) rows of ``method``."""
    sel = [r for r in rows if r["method"] == method and r["age"] > 0 and (seed is None or r.get("seed") == seed)]
    return {"r_bin8": {"mean": float(np.nanmean([r["r_bin8"] for r in sel])), "n": len(sel)},
            "ar_ppa": {"20": {"mean": float(np.nanmean([r["ar_ppa20"] for r in sel])), "n": len(sel)}}}


def add_calibration_metadata(src: Path, dst: Path, calibration_json: str, version: str) -> Path:
    """``src`` with ``synmag.calibration`` and a new ``synmag.version`` (same weights)."""
    import onnx

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    props["synmag.calibration"] = calibration_json
    props["synmag.version"] = version
    props.setdefault("synmag.kind", "halpha")
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(dst))
    return dst


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--seeds", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--halpha-version", default=None)
    p.add_argument("--limit", type=int, default=None, help="val days (default all)")
    p.add_argument("--dump-pixels", type=Path, default=None,
                   help="also save the calibration pixels here (.npz; derived from val: never commit)")
    a = p.parse_args(argv)

    from service.science.uncertainty import passes_gate
    from training.data import list_webp_days, training_days_metadata
    from training.nowcast.export import export_nowcast

    models = [load(s) for s in a.seeds]
    print(f"evaluating {len(models)} seeds on val", flush=True)
    # One pass scores each seed (the table's mean and sd) and the shipped file, their average.
    from training.nowcast.export import SeedEnsemble

    n = len(models)
    both = evaluate.collect([*models, SeedEnsemble(models).eval()], a.data_dir, a.cache,
                            limit=a.limit, pixel_seed=n)
    seeds_rows = [r for r in both["rows"] if r.get("seed", 0) < n]
    shipped_rows = [r for r in both["rows"] if r["method"] != "nowcast" or r["seed"] == n]
    shipped = {"rows": [{**r, "seed": 0} if r["method"] == "nowcast" else r for r in shipped_rows],
               "pixels": both["pixels"]}
    table = evaluate.table(seeds_rows)
    shipped_table = evaluate.table(shipped["rows"])
    if a.dump_pixels is not None:
        np.savez(a.dump_pixels, **{f"{k}_{f}": v for k, px in shipped["pixels"].items() for f, v in px.items()})
    cal_now, fig_now = calibrate(shipped["pixels"]["nowcast"])
    cal_ha, fig_ha = calibrate(shipped["pixels"]["halpha"])

    a.out.mkdir(parents=True, exist_ok=True)
    train_days = list_webp_days(a.data_dir / "train")
    # solar_cycle: the cycle of the generator inside (its Hale sign is the input halpha_sign).
    meta = {"version": a.version, "config": {"seeds": [json.loads(m.cfg.to_json()) for m in models]},
            **training_days_metadata(train_days), "calibration": cal_now.to_json(),
            "generator_version": str(np.load(a.cache / "val.npz")["generator_version"])}
    onnx_path = export_nowcast(models, a.generator, a.out / f"{a.version}.onnx", meta)
    rows = shipped["rows"]
    metrics = {
        "split": "val", "kind": "nowcast", "n_days": len({r["day"] for r in rows}),
        "model": summary_block(rows, "nowcast"),
        "baselines": {"persistence": summary_block(rows, "persistence"),
                      "zero": {"r_bin8": None, "ar_ppa": {"20": 0.0}},
                      "halpha": summary_block(rows, "halpha")},
        "by_age": shipped_table, "by_age_seeds": table,
        "calibration": fig_now["out_of_sample"], "calibration_detail": fig_now,
    }
    (a.out / f"{a.version}.metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True, default=float))
    ha_version = a.halpha_version or f"{np.load(a.cache / 'val.npz')['generator_version']}-cal"
    add_calibration_metadata(a.generator, a.out / f"{ha_version}.onnx", cal_ha.to_json(), ha_version)
    ha_metrics = json.loads(Path(str(a.generator).replace(".onnx", ".metrics.json")).read_text())
    ha_metrics["calibration"] = fig_ha["out_of_sample"]
    ha_metrics["calibration_detail"] = fig_ha
    (a.out / f"{ha_version}.metrics.json").write_text(json.dumps(ha_metrics, indent=1, sort_keys=True, default=float))
    reliability_png(fig_now, a.out / f"{a.version}.reliability.png", "nowcast, val")
    reliability_png(fig_ha, a.out / f"{ha_version}.reliability.png", "H-alpha only, val")
    card = [f"## Nowcast {a.version}", "", "Val, by prior age (nowcast: mean +- sd over "
            f"{len(models)} seeds; the shipped file averages them):", "", evaluate.markdown(table), "",
            "The shipped seed average:", "", evaluate.markdown(shipped_table), "",
            "Uncertainty on val (pixels with |B_true| > 20 G; out of sample = fitted on the first half of "
            "the val days, scored on the second):", "",
            "| model | ECE | AUROC | within +-1 sigma | decile MAE ratio | gate |", "|---|---|---|---|---|---|"]
    for name, fig in (("nowcast", fig_now), ("H-alpha only", fig_ha)):
        s = fig["out_of_sample"]
        card.append(f"| {name} | {s['ece']:.3f} | {s['auroc']:.3f} | {s['coverage']:.3f} | {s['decile_ratio']:.2f} | "
                    f"{'; '.join(passes_gate(s)) or 'passes'} |")
    (a.out / "nowcast_card.md").write_text("\n".join(card) + "\n")
    print("\n".join(card))
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
