"""``synmag-train``: train, evaluate, export and register generators.

Commands
--------
retrain   train -> evaluate -> export -> parity -> register -> gate (``make retrain``)
train     train only (checkpoints and history under ``out_dir/name``)
evaluate  score a checkpoint on val beside the baselines, write a report
export    export a checkpoint to ONNX and check parity on val frames
ensemble  one version from several runs (seed mean + N-S view), same chain as retrain
card      ship a run: copy its ONNX into models/ and write the model card
diagnose  where an ONNX model's r_bin8 is lost (magnitude vs polarity), beside persistence
nowcast   the nowcast's steps: ``cache`` (generator outputs, rotated priors), ``train`` (one seed),
          ``build`` (evaluate by prior age, calibrate, export, metrics, card); see training/README.md
dataset   build training pairs (GONG H-alpha + HMI, unclipped) from the archives
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.errors import UsageError


def _common(p: argparse.ArgumentParser, config: bool = True) -> None:
    p.add_argument("--data-dir", required=True, type=_data_dir,
                   help="dataset root: Ha2Mag train/ and val/, a built folder (synmag-train dataset build), "
                        "or several of them comma-separated")
    if config:
        p.add_argument("--config", required=True, help="TOML file or a name in training/configs/")
        p.add_argument("--out-dir", default=None, help="runs folder (default: the config's out_dir)")
        p.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
        p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--name", default=None, help="run name (default: the config's)")
        p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config key (TOML value; repeatable), e.g. --set ngf=32")


def _data_dir(text: str) -> str:
    """``--data-dir``: one folder or several, comma-separated (see training.data)."""
    missing = [p for p in text.split(",") if p.strip() and not Path(p.strip()).is_dir()]
    if missing or not text.strip():
        raise argparse.ArgumentTypeError(f"not a folder: {', '.join(missing) or repr(text)}")
    return text


def _config(args: argparse.Namespace):
    from training.config import load_config, parse_setting

    flags = {"data_dir": str(args.data_dir), "out_dir": args.out_dir, "max_steps": args.max_steps,
             "device": args.device, "seed": args.seed, "name": args.name}
    # A flag given explicitly (--seed 3) wins over a --set of the same key.
    overrides = dict(parse_setting(s) for s in args.settings)
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return load_config(args.config, **overrides)


def cmd_retrain(args: argparse.Namespace) -> int:
    from training.retrain import result_json, retrain

    result = retrain(_config(args), resume=args.resume, promote=not args.no_promote)
    print(result_json(result))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import train

    result = train(_config(args), resume=args.resume)
    print(json.dumps({"run_dir": str(result.run_dir), "step": result.step,
                      "checkpoints": [str(p) for p in result.checkpoints],
                      "crops_per_s": result.crops_per_s}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_generator, load_valset, short, summarise, write_report
    from training.train import generator_from_checkpoint

    generator, cfg, state = generator_from_checkpoint(args.checkpoint)
    valset = load_valset(args.data_dir, args.eval_days)
    scores, preds = evaluate_generator(generator, valset, keep_preds=3, scaling=cfg.scaling)
    summary = summarise(valset, scores)
    out = args.out or Path(args.checkpoint).with_suffix("")
    write_report(out, valset, summary, preds,
                 {"run": cfg.name, "checkpoint": str(args.checkpoint), "step": state.get("step"),
                  "config": cfg.to_dict()}, scores)
    print(short(summary), file=sys.stderr)
    print(json.dumps({"report": str(Path(out) / "report.json")}))
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from training.diagnose import diagnose

    print(json.dumps(diagnose(args.model, args.data_dir, args.eval_days), indent=1))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import numpy as np

    from training.data import split_days, training_days_metadata
    from training.evaluate import load_valset
    from training.export import export_onnx, parity
    from training.train import generator_from_checkpoint

    generator, cfg, state = generator_from_checkpoint(args.checkpoint)
    splits = split_days(args.data_dir)
    path = export_onnx(generator, args.out, {
        "config": cfg.to_dict(),
        **training_days_metadata(splits["train"][: cfg.train_days or None]),
        "output_scaling": cfg.scaling,
        "version": args.version or "",
    })
    valset = load_valset(args.data_dir, 2, splits)
    result = parity(generator, path, np.stack([d.x for d in valset.days]), scaling=cfg.scaling)
    print(json.dumps({"onnx": str(path), "parity": result}))
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from training.ensemble_run import build_ensemble
    from training.retrain import result_json

    if not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is not a folder")
    for run in args.members:
        if not (Path(run) / "report" / "report.json").is_file():
            raise UsageError(f"{run} has no report/report.json (run `synmag-train retrain` first)")
    result = build_ensemble(args.members, args.data_dir, args.name, args.out_dir,
                            ns_view=not args.no_ns_view, smooth_sigmas_px=args.smooth_px, calibrate_flux=args.calibrate_flux,
                            weights=args.weights, promote=args.promote,
                            eval_days=args.eval_days)
    print(result_json(result))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from training.model_card import build_card

    for run in [args.ship, *args.seeds, *args.ablation]:
        if not (Path(run) / "report" / "report.json").is_file():
            raise UsageError(f"{run} has no report/report.json (run `synmag-train retrain` first)")
    print(build_card(args.ship, args.seeds, args.ablation, args.out, args.notes))
    return 0


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from datetime import date

    from training.dataset.build import BuildRequest, build, parse_every, parse_sites, summary_text

    try:
        hour, _, minute = args.hour.partition(":")
        request = BuildRequest(
            start=date.fromisoformat(args.start), end=date.fromisoformat(args.end),
            gong_url=args.gong_url or _default_url("gong_base_url"), jsoc_url=args.jsoc_url or _default_url("jsoc_url"),
            hour=int(hour), minute=int(minute or 0), every=parse_every(args.every), sites=parse_sites(args.sites),
            window=parse_every(args.window), max_frames=args.max_frames, min_interval_s=args.min_interval,
            retry_skipped=args.retry_skipped,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    summary = build(request, args.out, progress=None if args.quiet else sys.stderr)
    print(summary_text(summary, args.out), file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _default_url(name: str) -> str:
    """The service's setting (``SYNMAG_GONG_BASE_URL``, ``SYNMAG_JSOC_URL``; the real archives by default)."""
    from service.settings import load_settings

    return str(getattr(load_settings(), name))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synmag-train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("retrain", help="train, evaluate, export, parity, register, gate")
    _common(p)
    p.add_argument("--resume", default=None, help="checkpoint to resume from")
    p.add_argument("--no-promote", action="store_true", help="register only, never promote")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("train", help="train only")
    _common(p)
    p.add_argument("--resume", default=None, help="checkpoint to resume from")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a checkpoint on val with the baselines")
    _common(p, config=False)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--eval-days", type=int, default=0, help="val days (0: all)")
    p.add_argument("--out", type=Path, default=None, help="report folder")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (+ parity on val)")
    _common(p, config=False)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--version", default=None)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ensemble", help="one version from several runs: evaluate, export, register")
    p.add_argument("--data-dir", required=True, type=Path, help="dataset root (train/ and val/)")
    p.add_argument("--members", nargs="+", required=True, type=Path, help="run folders (retrain output)")
    p.add_argument("--name", required=True, help="run name of the ensemble")
    p.add_argument("--out-dir", default="runs", type=Path)
    p.add_argument("--no-ns-view", action="store_true", help="members only, no north-south view")
    p.add_argument("--weights", choices=("float32", "float16"), default="float32",
                   help="stored weight type (float16 halves the file; compute stays float32)")
    p.add_argument("--smooth-px", type=float, nargs="+", default=[0.0],
                   help="Gaussian smoothing sigmas to try (model px); the best on val is kept")
    p.add_argument("--calibrate-flux", action="store_true",
                   help="scale the output so its unsigned flux matches HMI's on val (mean ratio 1)")
    p.add_argument("--eval-days", type=int, default=0, help="val days (0: all)")
    p.add_argument("--promote", action="store_true", help="promote when the gate passes")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("card", help="ship a run into models/ with its model card")
    p.add_argument("--ship", required=True, type=Path, help="run folder of the version to ship")
    p.add_argument("--seeds", nargs="+", required=True, type=Path,
                   help="run folders of the shipped configuration (all seeds, the shipped one too)")
    p.add_argument("--ablation", nargs="*", default=[], type=Path, help="run folders of the shuffled ablation")
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument("--notes", type=Path, default=None, help="markdown appended to the card (what was tried)")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("diagnose", help="r_bin8 split into magnitude and polarity, model vs persistence")
    _common(p, config=False)
    p.add_argument("--model", required=True, type=Path, help="ONNX file")
    p.add_argument("--eval-days", type=int, default=0, help="val days (0: all)")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("nowcast", help="nowcast steps: cache, train, build (each takes its own --help)")
    p.add_argument("step", choices=NOWCAST_STEPS)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_nowcast)

    p = sub.add_parser("dataset", help="training data from the archives")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    p = dsub.add_parser("build", help="GONG H-alpha + HMI pairs, one per step, resumable (training/dataset/)")
    p.add_argument("--start", required=True, help="first date, YYYY-MM-DD (UTC)")
    p.add_argument("--end", required=True, help="last date, YYYY-MM-DD (UTC), included")
    p.add_argument("--out", required=True, type=Path, help="folder of pairs, manifest.json and raw/ (made)")
    p.add_argument("--hour", default="00", help="UTC time of each step, HH or HH:MM (default 00)")
    p.add_argument("--every", default="1d", help="step, e.g. 1d, 12h (default 1d)")
    p.add_argument("--sites", default=None, help="GONG stations, codes or letters (BB,LE or B,L; default all)")
    p.add_argument("--gong-url", default=None,
                   help="GONG archive root (default SYNMAG_GONG_BASE_URL, else https://gong2.nso.edu)")
    p.add_argument("--jsoc-url", default=None,
                   help="JSOC root (default SYNMAG_JSOC_URL, else http://jsoc.stanford.edu)")
    p.add_argument("--window", default="30m", help="search frames this far either side of the step (default 30m)")
    p.add_argument("--max-frames", type=int, default=6, help="GONG downloads tried per step at most (default 6)")
    p.add_argument("--min-interval", type=float, default=1.0, metavar="S",
                   help="seconds between two requests to the archives, at least (default 1)")
    p.add_argument("--retry-skipped", action="store_true", help="try again the steps skipped earlier")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dataset_build)
    return parser


NOWCAST_STEPS = ("cache", "train", "build")


def cmd_nowcast(args: argparse.Namespace) -> int:
    import importlib

    importlib.import_module(f"training.nowcast.{args.step}").main(args.rest)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"synmag-train: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
