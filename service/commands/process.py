"""``synmag process``: frame files -> products (FITS + PNG) through ONNX Runtime.

The model is loaded once: ``--model`` is a path to an ``.onnx`` file or a registry
version; without it, ``SYNMAG_MODEL``, else the registry's production model. A model
built for another preprocessing version is refused with one line (exit 1). Each frame
is read by its source's reader (``--source``, default the first of
``SYNMAG_FRAME_SOURCES``), gated, preprocessed, predicted and written as
``<stem>_synmag-<version>.fits`` and ``.png`` in ``--out``. A bad frame gets one line
with its reason; the others are still processed; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frames", nargs="+", type=Path, metavar="FRAME", help="frame files (GONG .fits.fz)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--model", metavar="PATH_OR_VERSION", default=None,
        help="ONNX file or registry version (default: SYNMAG_MODEL, else the production model)",
    )
    parser.add_argument("--source", default=None, help="frame source whose files these are (default: the first configured)")


def main(args: argparse.Namespace) -> int:
    from service.commands.frames import for_each_frame
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import process_frame
    from service.registry import model_file
    from service.science.quality import Thresholds
    from service.settings import get_settings
    from service.sources.registry import frame_reader

    settings = get_settings()
    spec = args.model or settings.model
    path = model_file(spec)
    if path is None:  # a version, or the production one: the registry resolves it
        from service.registry import Registry

        path = Registry(settings).resolve(spec)
    model = OnnxGenerator.from_settings(path, settings, require_gpu=settings.require_gpu)
    # ModelIncompatible -> one line, exit 1 (service.cli)
    print(f"model {model.version} ({model.path.name}) on {', '.join(model.active_providers)}")
    read = frame_reader(args.source or settings.frame_sources[0])
    thresholds = Thresholds.from_settings(settings)

    def work(path: Path) -> str:
        result = process_frame(path, model, args.out, reader=read, thresholds=thresholds)
        stages = " ".join(f"{k}={v:.2f}s" for k, v in result.timings.items())
        return f"{result.fits_path} ({stages})"

    return for_each_frame(args.frames, work)
