"""Quality gate for H-alpha frames: accept or reject, with machine-readable reasons.

Reasons (the contract in ``docs/ARCHITECTURE.md``):

``wrong_shape``       image is not the source's frame shape (then nothing else is checked)
``nan_pixels``        non-finite pixels
``eclipse``           the ``eclipse`` measure is set
``filter_error``      ``error_code`` != 0 (GONG: the H-alpha filter error code)
``low_sharpness``     ``sharpness`` below ``min_sharpness``
``bright_sky``        sky / disk brightness above ``max_sky_ratio`` (clouds, haze)
``bad_limb_fit``      ``limb_points`` below ``min_limb_points`` or the fitted limb is an
                      ellipse (``1 - rmin / rmax`` above ``max_limb_ellipticity``)
``saturated_pixels``  on-disk fraction at or above ``saturation_counts`` too large

The measures are the generic ones of :data:`service.science.frame.QUALITY_MEASURES`;
each source's reader says which of its header keys carries which (GONG: ``SHARPNSS``,
``SKYBRITE``, ``HAERRCOD``, ``ECLIPSE``, ``LIMBPTCT``). A measure the source does not know
skips its check. ``sky_brightness`` is in counts (GONG: the average of the four corner
squares), so it is compared relative to the on-disk median: gain-independent across sites.

Defaults are lenient so good frames pass: the sunpy sample frame (a normal Big Bear
frame) has ``SHARPNSS`` 0.0084, sky/disk 0.06, ``LIMBPTCT`` 3, ``FNDLMBMI = FNDLMBMA``.
Real-world ranges of ``SHARPNSS`` were not available to calibrate against; the default
minimum (0.001) only rejects frames an order of magnitude blurrier than the sample.

``score`` ranks frames of the same minute (several sites): sharpness first, less sky as a
tie-break (``SHARPNSS - 0.001 * sky_ratio``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from service.science.frame import HalphaFrame
from service.vocabulary import Reason

__all__ = ["Thresholds", "Verdict", "gate"]

CORNER = 100  # side of the corner squares used when SKYBRITE is missing
SKY_TIEBREAK = 1e-3


@dataclass(frozen=True)
class Thresholds:
    """Gate thresholds (``Settings.gate_*``)."""

    min_sharpness: float = 0.001
    max_sky_ratio: float = 0.3
    min_limb_points: int = 1
    max_limb_ellipticity: float = 0.03
    max_saturated_fraction: float = 0.01
    saturation_counts: float = 4095

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        """Thresholds from a :class:`service.settings.Settings`."""
        return cls(
            min_sharpness=settings.gate_min_sharpness,
            max_sky_ratio=settings.gate_max_sky_brightness,
            min_limb_points=settings.gate_min_limb_points,
            max_limb_ellipticity=settings.gate_max_limb_ellipticity,
            max_saturated_fraction=settings.gate_max_saturated_fraction,
            saturation_counts=settings.gate_saturation_counts,
        )


@dataclass
class Verdict:
    """Outcome of :func:`gate`: ``accepted``, ``reasons`` (empty when accepted), ``score``.

    ``measures`` holds the values the decision used (for the record).
    """

    accepted: bool
    reasons: list[str]
    score: float
    measures: dict[str, float | int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def gate(frame: HalphaFrame, thresholds: Thresholds | None = None) -> Verdict:
    """Accept or reject a frame.

    Parameters
    ----------
    frame : HalphaFrame
    thresholds : Thresholds, optional
        Default :class:`Thresholds()`.

    Returns
    -------
    Verdict
    """
    th = thresholds or Thresholds()
    data = np.asarray(frame.data)
    if data.shape != tuple(frame.expected_shape):
        return Verdict(False, [Reason.WRONG_SHAPE], 0.0, {"shape": str(data.shape)})  # type: ignore[dict-item]

    reasons: list[str] = []
    q = frame.quality
    finite = np.isfinite(data)
    if not finite.all():
        reasons.append(Reason.NAN_PIXELS)
    if q.get("eclipse"):
        reasons.append(Reason.ECLIPSE)
    if q.get("error_code") not in (None, 0):
        reasons.append(Reason.FILTER_ERROR)
    sharp = q.get("sharpness")
    if sharp is not None and sharp < th.min_sharpness:
        reasons.append(Reason.LOW_SHARPNESS)

    disk = _disk_sample(data, frame.center_px, frame.radius_px)
    disk = disk[np.isfinite(disk)]
    median = float(np.median(disk)) if disk.size else 0.0
    sky = q.get("sky_brightness")
    if sky is None:
        c = CORNER
        sky = float(np.nanmean([data[:c, :c], data[:c, -c:], data[-c:, :c], data[-c:, -c:]]))
    sky_ratio = float(sky) / median if median > 0 else float("inf")
    if sky_ratio > th.max_sky_ratio:
        reasons.append(Reason.BRIGHT_SKY)

    rmin, rmax = frame.radius_minmax_px
    ellipticity = 1.0 - min(rmin, rmax) / max(rmin, rmax)
    points = q.get("limb_points")
    if (points is not None and points < th.min_limb_points) or (
        ellipticity > th.max_limb_ellipticity
    ):
        reasons.append(Reason.BAD_LIMB_FIT)

    saturated = float((disk >= th.saturation_counts).mean()) if disk.size else 0.0
    if saturated > th.max_saturated_fraction:
        reasons.append(Reason.SATURATED_PIXELS)

    score = float(sharp or 0.0) - SKY_TIEBREAK * (sky_ratio if np.isfinite(sky_ratio) else 1e3)
    measures = {
        "sharpness": sharp,
        "sky_ratio": round(sky_ratio, 5) if np.isfinite(sky_ratio) else None,
        "disk_median": round(median, 2),
        "saturated_fraction": round(saturated, 6),
        "limb_points": points,
        "limb_ellipticity": round(ellipticity, 5),
    }
    return Verdict(not reasons, reasons, score, measures)


def _disk_sample(
    data: np.ndarray, center: tuple[float, float], radius: float, step: int = 4
) -> np.ndarray:
    """Every ``step``-th pixel inside 0.95 R (limb excluded), as a 1-D array."""
    ny, nx = data.shape
    y = np.arange(0, ny, step, dtype=np.float32)[:, None] - np.float32(center[1])
    x = np.arange(0, nx, step, dtype=np.float32)[None, :] - np.float32(center[0])
    inside = x * x + y * y <= np.float32((0.95 * radius) ** 2)
    return data[::step, ::step][inside]
