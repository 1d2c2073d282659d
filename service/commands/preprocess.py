"""``synmag preprocess``: GONG frames -> model-input FITS, i.e. what the model sees.

One FITS file per frame, ``<stem>_model_input.fits`` in ``--out``: float32
1024x1024 on the dataset's 0..255 H-alpha scale (``SMUNITS = 'halpha_u8'``; the model
gets ``x = v / 127.5 - 1``), FITS row order (north up as displayed with origin lower),
with the model frame's helioprojective WCS, geometry and intensity-map keys. The quality
gate is not applied: operators see rejected frames too. Bad frames get one line with
the reason; the others are still written; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.science.preprocess import ModelInput


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frames", nargs="+", type=Path, metavar="FRAME", help="GONG .fits.fz files")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--source", default=None, help="frame source whose files these are (default: the first configured)")


def model_input_fits_bytes(model_input: ModelInput, input_file: str, input_sha256: str) -> bytes:
    """The model-input image as a FITS file in memory (see the module docstring)."""
    import io

    from astropy.io import fits

    from service import __version__
    from service.science.preprocess import PREPROCESS_VERSION, model_to_halpha
    from service.science.product import geometry_header

    geometry = model_input.geometry
    header = fits.Header()
    header["TELESCOP"] = ("synmag", "model input made from a GONG H-alpha frame")
    header["SMUNITS"] = ("halpha_u8", "dataset 0..255 scale; model x = v/127.5 - 1")
    header["BUNIT"] = ("", "dimensionless (dataset H-alpha scale)")
    header.update(geometry_header(geometry))
    header["MCENTERX"] = (geometry.center[0], "disk centre x, 0-based, model array")
    header["MCENTERY"] = (geometry.center[1], "disk centre y, 0-based, model array (FITS rows)")
    header["MRADIUS"] = (geometry.radius_px, "[pix] disk radius")
    header["INFILE"] = input_file
    header["INSHA256"] = input_sha256
    header["PREPVER"] = (PREPROCESS_VERSION, "synmag preprocessing version")
    header["SWVER"] = (__version__, "synmag software version")
    for key, name in (("IGAIN", "gain"), ("IOFFSET", "offset"), ("IP5", "frame_p5"), ("IP50", "frame_p50"),
                      ("ICLIPFR", "clipped_fraction"), ("IROTDEG", "rotation_deg")):
        if name in model_input.intensity:
            header[key] = (float(model_input.intensity[name]), f"intensity map: {name}")
    data = model_to_halpha(model_input.image)
    buf = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buf)
    return buf.getvalue()


def main(args: argparse.Namespace) -> int:
    import hashlib

    from service.commands.frames import for_each_frame
    from service.science.preprocess import preprocess
    from service.settings import get_settings
    from service.sources.registry import frame_reader

    read = frame_reader(args.source or get_settings().frame_sources[0])

    args.out.mkdir(parents=True, exist_ok=True)

    def work(path: Path) -> str:
        raw = path.read_bytes()
        model_input = preprocess(read(raw, path.name))
        data = model_input_fits_bytes(model_input, path.name, hashlib.sha256(raw).hexdigest())
        stem = path.name.removesuffix(".fz").removesuffix(".fits")
        target = args.out / f"{stem}_model_input.fits"
        try:
            with open(target, "wb" if args.overwrite else "xb") as fh:
                fh.write(data)
        except FileExistsError:
            raise FileExistsError(f"{target} exists (use --overwrite)") from None
        return str(target)

    return for_each_frame(args.frames, work)
