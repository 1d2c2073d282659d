"""``synmag process``: GONG frames -> products (FITS + PNG) through ONNX Runtime.

The model is loaded once: ``--model`` is a path to an ``.onnx`` file or a registry
version; without it, the registry's production model (``SYNMAG_MODEL`` if set). A
model built for another preprocessing version is refused with one line (exit 1).
Each frame is read, gated, preprocessed, predicted and written as
``<stem>_synmag-<version>.fits`` and ``.png`` in ``--out``. A bad frame gets one line
with its reason; the others are still processed; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frames", nargs="+", type=Path, metavar="FRAME", help="GONG .fits.fz files")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--model", metavar="PATH_OR_VERSION", default=None,
        help="ONNX file or registry version (default: the production model)",
    )


def _model_path(spec: str | None, settings: object) -> Path:
    """A local ONNX path: an existing file directly, else through the registry."""
    from service.errors import UsageError

    if spec is not None:
        path = Path(spec).expanduser()
        if path.is_file():
            return path
        if spec.endswith(".onnx"):
            raise UsageError(f"no such model file: {spec}")
    try:
        from service.registry import Registry
    except ImportError as exc:
        raise UsageError(f"model registry unavailable ({exc}); pass --model PATH.onnx") from exc
    return Registry(settings).resolve(spec)


def main(args: argparse.Namespace) -> int:
    from service.commands.frames import for_each_frame
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import process_frame
    from service.science.quality import Thresholds
    from service.settings import get_settings

    settings = get_settings()
    model = OnnxGenerator.from_settings(
        _model_path(args.model, settings), settings, require_gpu=settings.require_gpu
    )  # ModelIncompatible -> one line, exit 1 (service.cli)
    print(f"model {model.version} ({model.path.name}) on {', '.join(model.active_providers)}")
    thresholds = Thresholds.from_settings(settings)

    def work(path: Path) -> str:
        result = process_frame(path, model, args.out, thresholds=thresholds)
        stages = " ".join(f"{k}={v:.2f}s" for k, v in result.timings.items())
        return f"{result.fits_path} ({stages})"

    return for_each_frame(args.frames, work)
