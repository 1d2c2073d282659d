"""Any real magnetogram into the model frame at its own time: :func:`to_model_frame`.

One function for the three features that use real magnetograms: verification's truth
and persistence, the nowcast's prior (``service.science.prior.PriorMap``) and the
dataset builder. The model frame is the science core's
(:class:`~service.science.preprocess.ModelGeometry.for_time`: 1024x1024, solar north up,
the disk at ``MODEL_CENTER`` with ``MODEL_RADIUS_PX``, observer at Earth's centre; SDO
is within 0.13 model pixel of it on the disk).

The image goes through its WCS (:func:`service.sources.magnetograms.files.image_disk`:
disk centre, radius, rotation from astropy's WCS), is binned by whole pixels while it
is still at least twice the model frame's scale (HMI level 1, 4096 px: 2x2, as
hmi_prep bins), then takes the science core's resampling
(:func:`service.science.preprocess.resample_to_model`, the same zoom-and-rotate the
H-alpha frames take, with its Gaussian anti-aliasing for the rest of the shrink: 2.1 for
level 1). The two together smooth like a Gaussian of 1.24 level-1 pixels (a 4x4 bin
is 1.15), at a quarter of the cost of filtering the full image. Missing pixels (NaN
beyond the limb) are handled by normalised convolution: the field and its coverage are
binned and resampled alike and divided, so rim pixels are not darkened by the limb.
The TAN projection is taken as linear: within the disk (16 arcmin) it departs from
linear by under 1e-7 of the radius.

Field values are kept (no clipping: the dataset builder wants them unclipped);
verification clips where it scores.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from service.science.preprocess import ModelGeometry, model_disk_mask, resample_to_model
from service.sources.magnetograms.files import image_disk

if TYPE_CHECKING:
    from service.sources.magnetograms.base import Magnetogram

__all__ = ["to_model_frame"]

# Coverage below this (a model pixel mostly beyond the limb) is NaN.
MIN_COVERAGE = 0.5
_CACHE_SIZE = 4
_cache: OrderedDict[tuple[str, str, str], tuple[np.ndarray, ModelGeometry]] = OrderedDict()
_cache_lock = threading.Lock()


def bin_sum(data: np.ndarray, b: int) -> np.ndarray:
    """Sums of ``b`` x ``b`` blocks (a last partial row or column of blocks is dropped)."""
    if b == 1:
        return data
    ny, nx = (n - n % b for n in data.shape)
    return data[:ny, :nx].reshape(ny // b, b, nx // b, b).sum(axis=(1, 3), dtype=np.float32)


def to_model_frame(m: Magnetogram) -> tuple[np.ndarray, ModelGeometry]:
    """``m`` in the model frame at its own observation time.

    Parameters
    ----------
    m : Magnetogram
        In the model frame already (dataset files), or an image with its WCS (HMI level 1
        or 1.5, any size and rotation).

    Returns
    -------
    gauss : numpy.ndarray
        float32 (1024, 1024) Gauss, FITS row order (row 0 = solar south), NaN off the
        disk; read-only (results are shared: the last few are kept by sha256 and time).
    geometry : ModelGeometry
        The model frame at ``m.obs_time`` (``ModelGeometry.for_time``, with the image's
        apparent radius when its header gives one).

    Raises
    ------
    service.sources.magnetograms.base.MagnetogramRejected
        The WCS does not describe a full-disk image.
    """
    from astropy.time import Time

    key = (m.sha256, m.origin, m.obs_time.isoformat())
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    t = Time(m.obs_time.replace(tzinfo=None), scale="utc")
    if m.in_model_frame:
        geometry = ModelGeometry.for_time(t)
        if m.data.shape != (geometry.size, geometry.size):
            raise ValueError(f"a model-frame magnetogram is {geometry.size} square, got {m.data.shape}")
        gauss = np.array(m.data, dtype=np.float32)
    else:
        disk = image_disk(m.header, m.data.shape)
        geometry = ModelGeometry.for_time(t, rsun_arcsec=disk.rsun_arcsec)
        finite = np.isfinite(m.data)
        b = max(1, int(disk.radius_px / geometry.radius_px // 2))
        field_sum = bin_sum(np.where(finite, m.data, np.float32(0.0)), b)
        count = bin_sum(finite.astype(np.float32), b)
        # binned pixel i holds original pixels b*i .. b*i + b - 1: its centre is b*i + (b - 1) / 2
        center = tuple((c - (b - 1) / 2.0) / b for c in disk.center_px)
        zoom = {"center": geometry.center, "model_radius_px": geometry.radius_px}
        field = resample_to_model(field_sum, center, disk.radius_px / b, disk.rotation_deg, **zoom)
        coverage = resample_to_model(count, center, disk.radius_px / b, disk.rotation_deg, **zoom)
        with np.errstate(invalid="ignore", divide="ignore"):
            gauss = np.where(coverage >= MIN_COVERAGE, field / coverage, np.nan).astype(np.float32)
    gauss[~model_disk_mask(geometry.center, geometry.radius_px, geometry.size)] = np.nan
    gauss.flags.writeable = False
    with _cache_lock:
        _cache[key] = (gauss, geometry)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return gauss, geometry
