"""hmi_prep equivalent: an HMI magnetogram brought onto a product's grid.

HMI level-1 images are 4096x4096 at ~0.504"/px with solar north at CROTA2
(about 180 deg: the image is upside down) and SDO as observer. A product is
1024x1024, north up, at the GONG frame's plate scale and seen from the GONG
station. One WCS-to-WCS resampling does the rotation, rescaling and change of
observer (``reproject``, sunpy frames): the product grid is first refined by
``oversample`` so that every product pixel averages ``oversample**2`` samples
(the binning of hmi_prep), then binned back to 1024. Off-disk pixels are NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_OVERSAMPLE = 2


def _wcs(header: Any) -> Any:
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    hdr = header if isinstance(header, fits.Header) else fits.Header(dict(header))
    with warnings.catch_warnings():
        # wcslib's datfix fills MJD-OBS from DATE-OBS and says so: expected, harmless.
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(hdr)


def refined_wcs(wcs: Any, factor: int) -> Any:
    """``wcs`` on a grid ``factor`` times finer (same sky area, pixel centres kept exact)."""
    out = wcs.deepcopy()
    out.wcs.cdelt = np.asarray(wcs.wcs.cdelt) / factor
    # pixel p (1-based) of the coarse grid spans fine pixels factor*(p-1)+1 .. factor*p
    out.wcs.crpix = (np.asarray(wcs.wcs.crpix) - 0.5) * factor + 0.5
    if wcs.wcs.has_cd():
        out.wcs.cd = np.asarray(wcs.wcs.cd) / factor
    return out


def bin_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks; a block with any NaN is NaN (off the limb)."""
    if factor == 1:
        return data
    ny, nx = data.shape
    return data.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))


def prep_to_frame(data: np.ndarray, header: Any, target_header: Any,
                  shape: tuple[int, int] = (1024, 1024), oversample: int = DEFAULT_OVERSAMPLE) -> np.ndarray:
    """Resample an HMI map (FITS rows, its header) onto ``target_header``'s grid.

    Parameters
    ----------
    data : numpy.ndarray
        HMI line-of-sight field in Gauss, FITS row order, NaN where missing.
    header : dict or astropy.io.fits.Header
        HMI WCS and observer keywords (``CROTA2``, ``CDELT``, ``CRPIX``, ``DSUN_OBS`` ...).
    target_header : dict or astropy.io.fits.Header
        The product's WCS and observer keywords.
    shape : tuple of int
        Product shape.
    oversample : int
        Refinement of the product grid before binning back.

    Returns
    -------
    numpy.ndarray
        float32 Gauss on the product grid (FITS row order), NaN off the disk.
    """
    import sunpy.coordinates  # noqa: F401 - registers the solar frames with astropy WCS
    from reproject import reproject_interp

    src_wcs = _wcs(header)
    dst_wcs = refined_wcs(_wcs(target_header), oversample)
    fine_shape = (shape[0] * oversample, shape[1] * oversample)
    fine, footprint = reproject_interp((np.asarray(data, dtype=np.float64), src_wcs), dst_wcs,
                                       shape_out=fine_shape, order="bilinear")
    fine[footprint == 0] = np.nan
    return bin_mean(fine, oversample).astype(np.float32)
