"""Products: the magnetogram as FITS (float32 Gauss, helioprojective WCS) and a PNG quick-look.

The FITS header mimics HMI line-of-sight magnetograms where it matters to readers
(``BUNIT``, ``DATE-OBS``, ``T_OBS``, ``RSUN_OBS``, ``DSUN_OBS``, ``HGLN_OBS``,
``HGLT_OBS``, ``CROTA2``) so that ``sunpy.map.Map`` builds a helioprojective map with
the right scale, centre, observer and time. Provenance keys (names below) record
what went in and what made it; long values use the FITS ``CONTINUE`` convention.

Layers. The primary HDU is the field. A model with uncertainty outputs adds two image
extensions in the same geometry (same WCS and observer keys, so each is a sunpy map too):
``EXTNAME = 'SIGMA'`` (1-sigma uncertainty, Gauss) and ``EXTNAME = 'CONFIDENCE'`` (0..1,
the probability that the sign of the primary data is right where the true field exceeds
20 G; NaN off the disk). ``sunpy.map.Map(path)`` gives the three maps in that order.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from service.science.preprocess import GAUSS_SCALE, ModelGeometry

# Provenance dict key -> (FITS key, comment). Written once; the contract of
# ARCHITECTURE.md ("Products") names the dict keys.
PROVENANCE_KEYS: dict[str, tuple[str, str]] = {
    "input_file": ("INFILE", "input GONG H-alpha file name"),
    "input_sha256": ("INSHA256", "sha256 of the input file"),
    "site": ("SITE", "GONG site (SITENAME)"),
    "model_version": ("MODELVER", "model version (registry id)"),
    "model_sha256": ("MODELSHA", "sha256 of the ONNX model"),
    "preprocess_version": ("PREPVER", "synmag preprocessing version"),
    "model_cycle": ("MODCYCLE", "solar cycle of the model's Hale polarity"),
    "frame_cycle": ("CYCLE", "solar cycle of the observation"),
    "polarity_sign": ("POLSIGN", "model output x this (-1: Hale reversed)"),
    "model_kind": ("MODKIND", "model kind: halpha, or nowcast (with a prior)"),
    "prior_obs": ("PRIOROBS", "prior magnetogram observation time (UTC)"),
    "prior_age_h": ("PRIORAGE", "[h] age of the prior at the frame time"),
    "prior_source": ("PRIORSRC", "prior magnetogram series or file"),
    "prior_sha256": ("PRIORSHA", "sha256 of the prior magnetogram file"),
    "prior_note": ("PRIORWHY", "why no prior was used (H-alpha only)"),
    "software_version": ("SWVER", "synmag software version"),
    "created": ("DATE", "file creation time (UTC)"),
}

TELESCOPE = "synmag"
INSTRUMENT = "synmag"


def _hmi_t_obs(iso_utc: str) -> str:
    """HMI-style ``T_OBS`` (``YYYY.MM.DD_hh:mm:ss.ss_TAI``) from an ISO UTC time."""
    from astropy.time import Time

    tai = Time(iso_utc, scale="utc").tai
    dt = tai.to_datetime()
    return dt.strftime("%Y.%m.%d_%H:%M:%S.") + f"{dt.microsecond // 10000:02d}_TAI"


def geometry_header(geometry: ModelGeometry) -> fits.Header:
    """Helioprojective WCS and observer keys for an image in ``geometry``.

    Model-frame arrays are in FITS row order already: CRPIX is the disk
    centre (1-based), CRVAL (0, 0) the Sun centre, CDELT the plate scale
    in arcsec, no rotation (model frames are solar north up).
    """
    crpix1 = geometry.center[0] + 1.0
    crpix2 = geometry.center[1] + 1.0
    h = fits.Header()
    obs_iso = geometry.obs_time.utc.isot
    h["WCSNAME"] = ("Helioprojective-cartesian", "")
    h["CTYPE1"] = ("HPLN-TAN", "helioprojective longitude")
    h["CTYPE2"] = ("HPLT-TAN", "helioprojective latitude")
    h["CUNIT1"] = ("arcsec", "")
    h["CUNIT2"] = ("arcsec", "")
    h["CDELT1"] = (geometry.arcsec_per_px, "[arcsec/pix] plate scale")
    h["CDELT2"] = (geometry.arcsec_per_px, "[arcsec/pix] plate scale")
    h["CRPIX1"] = (crpix1, "disk centre x (1-based)")
    h["CRPIX2"] = (crpix2, "disk centre y (1-based)")
    h["CRVAL1"] = (0.0, "[arcsec] Sun centre")
    h["CRVAL2"] = (0.0, "[arcsec] Sun centre")
    h["CROTA2"] = (0.0, "[deg] solar north up")
    h["DATE-OBS"] = (obs_iso, "observation time of the input frame (UTC)")
    h["T_OBS"] = (_hmi_t_obs(obs_iso), "observation time (TAI, HMI style)")
    h["RSUN_OBS"] = (geometry.rsun_arcsec, "[arcsec] apparent solar radius")
    h["R_SUN"] = (geometry.radius_px, "[pix] solar radius in the image")
    h["DSUN_OBS"] = (geometry.dsun_m, "[m] observer to Sun centre")
    h["HGLN_OBS"] = (geometry.hgln_deg, "[deg] observer Stonyhurst longitude")
    h["HGLT_OBS"] = (geometry.hglt_deg, "[deg] observer Stonyhurst latitude")
    return h


def _set_provenance(header: fits.Header, provenance: dict[str, Any]) -> None:
    unknown = set(provenance) - set(PROVENANCE_KEYS)
    if unknown:
        raise ValueError(f"unknown provenance keys: {sorted(unknown)}")
    for name, (key, comment) in PROVENANCE_KEYS.items():
        value = provenance.get(name)
        if name == "created" and value is None:
            value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if value is None:
            continue
        value = str(value)
        # A comment that does not fit on the card would be truncated with a warning;
        # long values (file names) go onto CONTINUE cards, which carry the comment.
        fits_on_card = len(value) + len(comment) <= 80 - 10 - 2 - 3 - 2
        header[key] = (value, comment) if fits_on_card or len(value) > 68 else value


def product_header(geometry: ModelGeometry, provenance: dict[str, Any]) -> fits.Header:
    """Full product header: WCS, observer, units, HMI-like and provenance keys."""
    h = fits.Header()
    h["TELESCOP"] = (TELESCOPE, "synthetic magnetogram")
    h["INSTRUME"] = (INSTRUMENT, "GONG H-alpha -> HMI-like Blos (pix2pix)")
    h["CONTENT"] = ("synthetic line-of-sight magnetogram", "")
    h["BUNIT"] = ("Gauss", "line-of-sight field")
    h["DATAMIN"] = (-GAUSS_SCALE, "[Gauss] clipped like the training data")
    h["DATAMAX"] = (GAUSS_SCALE, "[Gauss] model range")
    h.update(geometry_header(geometry))
    _set_provenance(h, provenance)
    h["COMMENT"] = "Off-disk pixels are NaN. Generated by synmag from a GONG H-alpha frame;"
    h["COMMENT"] = "not an HMI observation. Field saturates at +-200 G like the training data."
    return h


# The uncertainty layers: EXTNAME -> (BUNIT, what it is).
LAYERS: dict[str, tuple[str, str]] = {
    "SIGMA": ("Gauss", "1-sigma uncertainty of the line-of-sight field"),
    "CONFIDENCE": ("", "P(sign of the primary data right), |B| > 20 G"),
}


def _layer_hdu(name: str, data: np.ndarray, geometry: ModelGeometry) -> fits.ImageHDU:
    unit, what = LAYERS[name]
    h = fits.Header()
    h["EXTNAME"] = (name, what)
    h["TELESCOP"] = (TELESCOPE, "synthetic magnetogram")
    h["INSTRUME"] = (INSTRUMENT, "")
    h["BUNIT"] = (unit, "")
    h.update(geometry_header(geometry))
    return fits.ImageHDU(data=np.asarray(data, dtype=np.float32), header=h)


def product_fits_bytes(
    gauss: np.ndarray,
    geometry: ModelGeometry,
    provenance: dict[str, Any],
    *,
    sigma: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> bytes:
    """The product FITS file in memory: the field (primary HDU, float32 Gauss) and, when
    given, the ``SIGMA`` and ``CONFIDENCE`` layers (both or neither).

    Arrays are model-frame arrays, already in FITS row order (row 0 = south).
    """
    data = np.asarray(gauss, dtype=np.float32)
    if data.shape != (geometry.size, geometry.size):
        raise ValueError(f"magnetogram shape {data.shape} != geometry size {geometry.size}")
    if (sigma is None) != (confidence is None):
        raise ValueError("SIGMA and CONFIDENCE come together")
    hdus: list[Any] = [fits.PrimaryHDU(data=data, header=product_header(geometry, provenance))]
    for name, layer in (("SIGMA", sigma), ("CONFIDENCE", confidence)):
        if layer is not None:
            if np.shape(layer) != data.shape:
                raise ValueError(f"{name} shape {np.shape(layer)} != {data.shape}")
            hdus.append(_layer_hdu(name, layer, geometry))
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf, checksum=True)  # after EXTEND is set: each HDU's CHECKSUM holds
    return buf.getvalue()


def write_product_fits(
    path: str | Path, gauss: np.ndarray, geometry: ModelGeometry, provenance: dict[str, Any]
) -> Path:
    """Write the product FITS to ``path`` (never over an existing file). Returns the path."""
    path = Path(path)
    data = product_fits_bytes(gauss, geometry, provenance)
    with open(path, "xb") as fh:
        fh.write(data)
    return path


def quicklook_png_bytes(
    gauss: np.ndarray, *, title: str | None = None, vmax: float = GAUSS_SCALE, dpi: int = 100
) -> bytes:
    """PNG quick-look: diverging colormap, symmetric +-``vmax`` G, colorbar in Gauss.

    ``gauss`` is a model-frame array (FITS rows: row 0 = south, drawn at the bottom). About
    1000 px wide; NaN (off disk) is drawn light grey.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cmap = colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
    fig = Figure(figsize=(10.0, 8.6), dpi=dpi)
    ax = fig.add_axes((0.02, 0.03, 0.80, 0.90))
    im = ax.imshow(
        np.asarray(gauss, dtype=np.float32),
        origin="lower",
        cmap=cmap,
        vmin=-vmax,
        vmax=vmax,
        interpolation="antialiased",
    )
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=12)
    cax = fig.add_axes((0.85, 0.10, 0.03, 0.76))
    bar = fig.colorbar(im, cax=cax, extend="both")
    bar.set_label("line-of-sight field [Gauss]")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def write_quicklook_png(
    path: str | Path, gauss: np.ndarray, *, title: str | None = None, vmax: float = GAUSS_SCALE
) -> Path:
    """Write the PNG quick-look to ``path`` (never over an existing file). Returns the path."""
    path = Path(path)
    data = quicklook_png_bytes(gauss, title=title, vmax=vmax)
    with open(path, "xb") as fh:
        fh.write(data)
    return path
