"""Baselines every model score is reported beside: the zero map and persistence.

Persistence is the previous magnetogram rotated differentially to the target
time (:func:`rotate_to`): what one knows without any H-alpha at all. A model
that does not beat it has learned nothing useful about the present.

Projection: orthographic (the ~0.3 % perspective of an observer at 1 AU is
ignored), the image solar-north-up with no roll (P = 0), as the model frame and
the Ha2Mag data are. "North up" there is the FITS convention: array row 0 is
SOUTH (north up when drawn with ``origin="lower"``). Measured on the val days:
rotating day d to d+1 with row 0 taken as south correlates better with day d+1
on every day tried (r 0.47 vs 0.18 at B0 = -7 deg; the gap shrinks with |B0|), and
Hale's law for cycle 24 (leading polarity negative in the north) holds in the
high rows. Heliographic latitude uses B0 of each time
(``sunpy.coordinates.sun.B0``); the rotation rate is Howard et al. (1990),
``A + B sin^2(lat) + C sin^4(lat)`` with (2.894, -0.428, -0.370) microrad/s, the
default of ``sunpy.sun.models.differential_rotation``, made synodic by
subtracting Earth's mean orbital rate 0.9856 deg/day (also as sunpy does):
13.34 deg/day at the equator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from service.science.metrics import disk_mask, geometry_of

HOWARD_URAD_S = (2.894, -0.428, -0.370)
EARTH_ORBIT_DEG_DAY = 0.9856
_URAD_S_TO_DEG_DAY = 1e-6 * 86400.0 * 180.0 / np.pi
SOURCE_MU_MIN = 0.1
"""Smallest source mu in the mu_target / mu_source rescaling of a rotated field."""


def synodic_rate_deg_day(lat_rad: np.ndarray) -> np.ndarray:
    """Synodic differential rotation rate (deg/day) at heliographic latitude (radians)."""
    a, b, c = (k * _URAD_S_TO_DEG_DAY for k in HOWARD_URAD_S)
    s2 = np.sin(lat_rad) ** 2
    return a + b * s2 + c * s2 * s2 - EARTH_ORBIT_DEG_DAY


def _b0_rad(time: Any) -> float:
    from sunpy.coordinates import sun
    from sunpy.time import parse_time

    return float(sun.B0(parse_time(time)).to_value("rad"))


def _days(prev_time: Any, target_time: Any) -> float:
    from sunpy.time import parse_time

    return float((parse_time(target_time) - parse_time(prev_time)).to_value("day"))


def rotate_to(
    prev_gauss: np.ndarray,
    prev_time: Any,
    target_time: Any,
    geometry: Any,
    *,
    prev_geometry: Any = None,
    row0_north: bool = False,
    mu_correct: bool = True,
    clip_g: float | None = 200.0,
) -> np.ndarray:
    """Rotate a magnetogram differentially from ``prev_time`` to ``target_time``.

    For each on-disk pixel of the target frame: its heliographic (lat, lon) with the
    target B0; the source longitude ``lon - rate(lat) * dt``; the source pixel with the
    previous frame's B0 and geometry; bilinear sampling there. Vectorised; about
    0.1 s for 1024x1024.

    Parameters
    ----------
    prev_gauss : numpy.ndarray
        2-D field in Gauss at ``prev_time``; NaN (off-disk) is read as 0 G.
    prev_time, target_time : astropy.time.Time or str or datetime
        Observation times (anything ``sunpy.time.parse_time`` takes).
    geometry : object
        Disk centre and radius of the target frame (``center``/``center_px``,
        ``radius_px``: see :mod:`service.science.metrics`).
    prev_geometry : object, optional
        The previous frame's geometry; default the target's.
    row0_north : bool
        False (default) when array row 0 is solar south: FITS order, the Ha2Mag images
        and the model frame. True for arrays whose row 0 is north.
    mu_correct : bool
        Rescale the line-of-sight field by ``mu_target / mu_source`` (radial-field
        approximation; both mu clipped at 0.1) so foreshortening follows the
        rotation. The result is clipped to +-``clip_g`` (the data's saturation), or not
        when ``clip_g`` is None.

    Returns
    -------
    numpy.ndarray
        float32 Gauss on the target frame: NaN off the disk; 0 G where the source
        point was on the far side (the area newly rotated in at the east limb,
        for which persistence knows nothing).
    """
    prev = np.asarray(prev_gauss)
    if prev.ndim != 2:
        raise ValueError(f"prev_gauss must be 2-D, got shape {prev.shape}")
    g = geometry_of(geometry)
    gp = geometry_of(prev_geometry) if prev_geometry is not None else g
    dt = _days(prev_time, target_time)
    b_t, b_p = _b0_rad(target_time), _b0_rad(prev_time)
    sgn = 1.0 if row0_north else -1.0

    on = disk_mask(prev.shape, g)
    ys, xs = np.nonzero(on)
    # Target pixel -> unit-sphere (X west, Y north, Z to the observer).
    x = (xs - g.center[0]) / g.radius_px
    y = sgn * (g.center[1] - ys) / g.radius_px
    z = np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, None))
    # Undo the B0 tilt: Sun frame with the rotation axis along y_s.
    cb, sb = np.cos(b_t), np.sin(b_t)
    y_s = y * cb + z * sb
    z_s = -y * sb + z * cb
    lat = np.arcsin(np.clip(y_s, -1.0, 1.0))
    lon = np.arctan2(x, z_s) - np.deg2rad(synodic_rate_deg_day(lat) * dt)
    # Back into the previous frame with its B0.
    cl = np.cos(lat)
    xs_, zs_ = cl * np.sin(lon), cl * np.cos(lon)
    cb, sb = np.cos(b_p), np.sin(b_p)
    y_p = y_s * cb - zs_ * sb
    z_p = y_s * sb + zs_ * cb
    col = gp.center[0] + xs_ * gp.radius_px
    row = gp.center[1] - sgn * y_p * gp.radius_px
    src = np.where(np.isfinite(prev), prev, 0.0).astype(np.float32)
    vals = ndimage.map_coordinates(src, [row, col], order=1, mode="constant", cval=0.0)
    visible = z_p > -1e-9  # not behind the limb (tolerating rounding at mu = 0)
    if mu_correct:
        # Both mu clipped: near the limb the ratio -> 1, amplification at most 10x.
        vals = vals * (np.maximum(z, SOURCE_MU_MIN) / np.maximum(z_p, SOURCE_MU_MIN))
    vals = np.where(visible, vals, 0.0)
    if clip_g is not None:
        vals = np.clip(vals, -clip_g, clip_g)
    out = np.full(prev.shape, np.nan, dtype=np.float32)
    out[ys, xs] = vals
    return out


def zero_baseline(truth: np.ndarray) -> np.ndarray:
    """The zero map: 0 G where ``truth`` is finite, NaN elsewhere (float32)."""
    truth = np.asarray(truth)
    return np.where(np.isfinite(truth), 0.0, np.nan).astype(np.float32)
