"""``synmag process``: frame files -> products (FITS + PNG) through ONNX Runtime.

The models are loaded once: the production version of each kind (H-alpha only, and the
nowcast when one is in production); ``--model`` (a path to an ``.onnx`` file or a
registry version; default ``SYNMAG_MODEL``) takes the place of its kind's. A model built
for another preprocessing version, or with inputs this service cannot feed, is refused
with one line (exit 1).

With ``--prior-dir DIR`` each frame's prior is the newest magnetogram file in DIR (HMI
level 1 or 1.5 FITS, or dataset ``*_hmi.webp``) observed at least ``--prior-min-age``
hours (default 0) and at most ``SYNMAG_PRIOR_MAX_AGE_H`` (168) before the frame, and the
nowcast serves it; without one (or without ``--prior-dir``) the H-alpha-only model does,
and the product says why (``PRIORWHY``). ``--prior-min-age`` also drills an HMI outage.
Each frame
is read by its source's reader (``--source``, default the first of
``SYNMAG_FRAME_SOURCES``), gated, preprocessed, predicted and written as
``<stem>_synmag-<version>.fits`` and ``.png`` in ``--out``. A bad frame gets one line
with its reason; the others are still processed; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.inference.process import ServingModels
    from service.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frames", nargs="+", type=Path, metavar="FRAME", help="frame files (GONG .fits.fz)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--model", metavar="PATH_OR_VERSION", default=None,
        help="ONNX file or registry version (default: SYNMAG_MODEL, else the production model)",
    )
    parser.add_argument("--source", default=None, help="frame source whose files these are (default: the first configured)")
    parser.add_argument("--prior-dir", type=Path, default=None,
                        help="folder of real magnetograms (HMI FITS) for the nowcast's prior")
    parser.add_argument("--prior-min-age", type=float, default=0.0, metavar="HOURS",
                        help="use only priors observed at least this long before each frame (default 0)")


def main(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from service.commands.frames import for_each_frame
    from service.errors import UsageError
    from service.inference.process import prior_line, process_frame
    from service.pipeline.prior import PriorFinder
    from service.science.quality import Thresholds
    from service.settings import get_settings
    from service.sources.magnetograms.folder import FolderSource
    from service.sources.registry import frame_reader

    settings = get_settings()
    if args.prior_min_age < 0 or args.prior_min_age > settings.prior_max_age_h:
        raise UsageError(f"--prior-min-age must lie in 0..{settings.prior_max_age_h:g} hours")
    models = serving_models(settings, args.model or settings.model, want_nowcast=args.prior_dir is not None)
    for model in (models.halpha, models.nowcast):
        if model is not None:  # ModelIncompatible -> one line, exit 1 (service.cli)
            print(f"{model.kind} model {model.version} ({model.path.name}) on {', '.join(model.active_providers)}")
    finder = None
    if args.prior_dir is not None:
        finder = PriorFinder(FolderSource(args.prior_dir), timedelta(hours=args.prior_min_age),
                             timedelta(hours=settings.prior_max_age_h))
    read = frame_reader(args.source or settings.frame_sources[0])
    thresholds = Thresholds.from_settings(settings)

    def work(path: Path) -> str:
        result = process_frame(path, models, args.out, reader=read, thresholds=thresholds,
                               prior_for=finder.find if finder else None)
        stages = " ".join(f"{k}={v:.2f}s" for k, v in result.timings.items())
        return f"{result.fits_path} [{result.model_kind}; {prior_line(result.provenance)}] ({stages})"

    return for_each_frame(args.frames, work)


def serving_models(settings: Settings, spec: str | None, *, want_nowcast: bool = True) -> ServingModels:
    """The production model of each kind, ``spec`` (path or version) in its kind's place.

    Without ``want_nowcast`` (no prior to give it) no nowcast is looked up: a command
    given an H-alpha-only file then touches no registry at all.
    """
    from service.errors import UsageError
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import ServingModels
    from service.registry import Registry, model_file
    from service.vocabulary import ModelKind

    def load(path: Path) -> OnnxGenerator:
        return OnnxGenerator.from_settings(path, settings, require_gpu=settings.require_gpu)

    registry = None
    given = None
    path = model_file(spec)
    if spec is not None:
        if path is None:
            registry = Registry(settings)
            path = registry.resolve(spec)
        given = load(path)
    chosen: dict[ModelKind, OnnxGenerator | None] = {}
    for kind in ModelKind:
        if given is not None and given.kind == kind:
            chosen[kind] = given
            continue
        if kind == ModelKind.NOWCAST and not want_nowcast:
            chosen[kind] = None
            continue
        registry = registry or Registry(settings)
        found = registry.production_file(kind)
        chosen[kind] = load(found) if found is not None else None
    if chosen[ModelKind.HALPHA] is None and chosen[ModelKind.NOWCAST] is None:
        raise UsageError("no production model: register and promote one (make retrain) or pass --model")
    return ServingModels(halpha=chosen[ModelKind.HALPHA], nowcast=chosen[ModelKind.NOWCAST])
