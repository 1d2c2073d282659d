"""Automatic active-region (AR) detection on a reference magnetogram in Gauss.

The boxes are found on the TRUTH map and the same boxes are applied to the
prediction (:func:`service.science.metrics.score_regions`), so a model is scored
where the real active regions are, whatever it drew.

Method (tuned on the real val HMI days of the Ha2Mag data, 1024x1024, disk
radius ~450 px, ~2.1 arcsec/px, field clipped at +-200 G):

1. ``|B|`` on the disk, smoothed with a Gaussian of sigma :data:`SMOOTH_SIGMA_PX`
   (4 px ~ 8.5 arcsec, wiping out the quiet-Sun network), mask-normalised so the
   limb is not pulled to zero by the off-disk pixels;
2. cores: smoothed ``|B| >`` :data:`THRESHOLD_G` (50 G) on the disk;
3. connected components (8-connectivity) of at least :data:`MIN_AREA_PX` pixels
   (150 px ~ 680 arcsec^2, about 200 MSH foreshortened: small plage patches and
   pores drop out);
4. bounding boxes padded by :data:`PAD_PX` (12 px) and clipped to the image,
   then merged while any two overlap (a bipole's two polarities become one region).

On the 130 val days this gives 7.2 regions per day on average (median 7, range 1..14).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SMOOTH_SIGMA_PX = 4.0
THRESHOLD_G = 50.0
MIN_AREA_PX = 150
PAD_PX = 12


@dataclass(frozen=True)
class Region:
    """One active region: a box on the image and what was found inside it.

    Attributes
    ----------
    slice_y, slice_x : slice
        The (padded, merged) box; ``image[slice_y, slice_x]`` is the crop.
    area : int
        Pixels of the detected cores inside the box (before padding).
    peak_g : float
        Largest smoothed ``|B|`` in the cores (G).
    """

    slice_y: slice
    slice_x: slice
    area: int
    peak_g: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``, end exclusive."""
        return (self.slice_y.start, self.slice_y.stop, self.slice_x.start, self.slice_x.stop)

    def as_dict(self) -> dict[str, int | float | list[int]]:
        return {"box_yyxx": list(self.box), "area_px": self.area, "peak_g": self.peak_g}


def bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The smallest ``(rows, cols)`` slices holding every True pixel (empty mask: all)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def smoothed_abs_field(
    truth: np.ndarray, mask: np.ndarray, sigma: float = SMOOTH_SIGMA_PX
) -> np.ndarray:
    """Mask-normalised Gaussian smoothing of ``|B|`` on the disk (0 off the disk).

    Filtered on the disk's bounding box only: outside it everything is 0, which is
    what the zero (``constant``) boundary of the filter assumes anyway.
    """
    m = mask & np.isfinite(truth)
    box = bounding_box(m)
    mb = m[box]
    a = np.where(mb, np.abs(truth[box]), 0.0).astype(np.float32)
    w = ndimage.gaussian_filter(mb.astype(np.float32), sigma, mode="constant")
    s = ndimage.gaussian_filter(a, sigma, mode="constant")
    out = np.zeros(truth.shape, dtype=np.float32)
    np.divide(s, w, out=out[box], where=mb & (w > 1e-6))
    return out


def _merge(boxes: list[list[int]]) -> list[list[int]]:
    """Merge overlapping ``[y0, y1, x0, x1, area, peak]`` boxes until none overlap."""
    changed = True
    while changed:
        changed = False
        merged: list[list[int]] = []
        for b in boxes:
            for m in merged:
                if b[0] < m[1] and m[0] < b[1] and b[2] < m[3] and m[2] < b[3]:
                    m[0], m[1] = min(m[0], b[0]), max(m[1], b[1])
                    m[2], m[3] = min(m[2], b[2]), max(m[3], b[3])
                    m[4] += b[4]
                    m[5] = max(m[5], b[5])
                    changed = True
                    break
            else:
                merged.append(list(b))
        boxes = merged
    return boxes


def detect_regions(
    truth: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    threshold_g: float = THRESHOLD_G,
    sigma_px: float = SMOOTH_SIGMA_PX,
    min_area_px: int = MIN_AREA_PX,
    pad_px: int = PAD_PX,
) -> list[Region]:
    """Find active regions on a magnetogram in Gauss (see the module docstring).

    Parameters
    ----------
    truth : numpy.ndarray
        2-D field in Gauss; NaN is off-disk.
    mask : numpy.ndarray of bool, optional
        On-disk pixels; default every finite pixel.

    Returns
    -------
    list of Region
        Sorted by decreasing core area; empty when nothing passes.
    """
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise ValueError(f"truth must be 2-D, got shape {truth.shape}")
    m = np.isfinite(truth) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(truth))
    s = smoothed_abs_field(truth, m, sigma_px)
    cores = (s > threshold_g) & m
    eight = np.ones((3, 3), dtype=bool)
    labels, n = ndimage.label(cores, structure=eight)
    if n == 0:
        return []
    # Drop the many small components first: per-label scipy calls scale with their number.
    keep = np.bincount(labels.ravel(), minlength=n + 1) >= min_area_px
    keep[0] = False
    labels, n = ndimage.label(keep[labels], structure=eight)
    if n == 0:
        return []
    h, w = truth.shape
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        core = labels[sl] == i  # on the crop: per-label work stays small
        boxes.append([
            max(sl[0].start - pad_px, 0), min(sl[0].stop + pad_px, h),
            max(sl[1].start - pad_px, 0), min(sl[1].stop + pad_px, w),
            int(core.sum()), float(s[sl][core].max()),
        ])
    regions = [
        Region(slice(b[0], b[1]), slice(b[2], b[3]), int(b[4]), float(b[5])) for b in _merge(boxes)
    ]
    return sorted(regions, key=lambda r: -r.area)
