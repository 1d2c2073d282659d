"""``synmag metrics PRED.fits TRUTH.fits [--json] [--regions]``: score a magnetogram.

Both files are 2-D FITS images in Gauss (the first HDU with 2-D data); NaN marks
off-disk pixels. The disk is the pixels finite in both maps. The disk centre and
radius (for mu in the flux metrics) come from the truth's header when it carries
an HMI-like WCS (``CRPIX``/``CDELT``/``CRVAL`` helioprojective with ``RSUN_OBS``),
else from the pred's, else they are fitted to the finite mask (centroid,
equal-area radius). Non-finite numbers are written as JSON ``null`` (PSNR of
identical maps is infinite: ``mse`` is then 0).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from service.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, help="predicted magnetogram (FITS, Gauss)")
    parser.add_argument("truth", type=Path, help="reference magnetogram (FITS, Gauss)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument(
        "--regions", action="store_true", help="add active-region metrics (ar_*, boxes)"
    )


def read_image(path: Path) -> tuple[Any, Any]:
    """The first HDU with 2-D data of a FITS file, as (float64 array, header)."""
    import numpy as np
    from astropy.io import fits

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if hdu.data is not None and getattr(hdu, "is_image", True):
                    data = np.asarray(hdu.data, dtype=np.float64)
                    if data.ndim != 2:
                        raise UsageError(f"{path}: image is {data.ndim}-D, expected 2-D")
                    return data, hdu.header
    except UsageError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError...
        raise UsageError(f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})") from exc
    raise UsageError(f"{path}: no image data in any HDU")


def geometry_from_header(header: Any) -> Any:
    """Disk centre (0-based px) and radius from an HMI-like helioprojective WCS, or None."""
    import warnings

    import astropy.units as u
    from astropy.wcs import WCS, FITSFixedWarning

    from service.science.metrics import DiskGeometry

    needed = ("CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "RSUN_OBS")
    if any(k not in header for k in needed):
        return None
    try:
        with warnings.catch_warnings():
            # Solar headers carry keys (DSUN_OBS, MJD-OBS...) astropy "fixes" noisily.
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        # Disk centre: the pixel of helioprojective (0, 0) (any unit: it is zero).
        cx, cy = wcs.wcs_world2pix([[0.0, 0.0]], 0)[0]
        # wcslib rescales CDELT to degrees internally; read the header's own unit.
        cunit = u.Unit(str(header.get("CUNIT1", "arcsec")).strip() or "arcsec")
        scale = abs(float(header["CDELT1"])) * cunit
        radius = float((float(header["RSUN_OBS"]) * u.arcsec / scale).decompose())
    except Exception:  # an absurd or partial WCS: fall back to the mask
        return None
    if not (math.isfinite(cx) and math.isfinite(cy) and math.isfinite(radius) and radius > 0):
        return None
    return DiskGeometry((float(cx), float(cy)), radius)


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _table(result: dict[str, Any]) -> str:
    """The metric table's metrics (``service.science.metric_table``), then PPA by threshold."""
    from service.science.metric_table import METRICS

    def f(v: Any, fmt: str = ".4f") -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = [f"{'pixels on disk':<50} {result['n_pixels']}"]
    for metric in METRICS:
        if metric.regions and "n_regions" not in result:
            continue
        unit = f" ({metric.unit})" if metric.unit else ""
        lines.append(f"{metric.label + unit:<50} {metric.format(metric.read(result))}")
    lines += [
        "PPA  " + "  ".join(f"{k:>5} G" for k in result["ppa"]),
        "     " + "  ".join(f"{f(v, '7.3f')}" for v in result["ppa"].values()),
    ]
    if "n_regions" in result:
        lines += [
            f"{'active regions':<50} {result['n_regions']}",
            "AR PPA " + " ".join(f"{f(v, '7.3f')}" for v in result["ar_ppa"].values()),
        ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from service.science.metrics import score

    pred, pred_header = read_image(args.pred)
    truth, truth_header = read_image(args.truth)
    if pred.shape != truth.shape:
        raise UsageError(f"shape mismatch: {args.pred} is {pred.shape}, {args.truth} is {truth.shape}")
    mask = np.isfinite(pred) & np.isfinite(truth)
    if not mask.any():
        raise UsageError("no pixel is finite in both maps")
    geometry = geometry_from_header(truth_header) or geometry_from_header(pred_header)
    result = score(pred, truth, mask, geometry, regions=args.regions)
    if args.json:
        print(json.dumps(_clean(result), indent=2, allow_nan=False))
    else:
        print(_table(result))
    return 0
