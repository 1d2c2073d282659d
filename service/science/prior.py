"""The nowcast's prior: a real magnetogram rotated to the frame's minute, as the model takes it.

One function, :func:`rotate_prior`, used by training (priors 1-7 days before each training
day) and by serving (the newest magnetogram of the prior source), so the model sees in
operation exactly what it learned from. It is the same differential rotation that
persistence uses (:func:`service.science.rotation.rotate_to`), clipped at +-200 G like
the training data, plus a *seen* map: the target pixels whose source point was on the
prior's visible disk. Where the prior saw nothing (the band rotated in at the east limb
since the prior was taken) the field is 0 G and ``seen`` is 0, so the model can tell
"quiet" from "unknown".

:func:`model_inputs` turns a :class:`PriorMap` (or its absence) into the nowcast's ONNX
inputs (``prior``, ``prior_seen``, ``prior_age_h``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.science.preprocess import gauss_to_model
from service.science.rotation import rotate_to

CLIP_GAUSS = 200.0
"""The prior is clipped like the data the model learned from (Ha2Mag: +-200 G)."""
SEEN_MIN = 0.5
"""A target pixel is *seen* when at least half of its bilinear source lay on the visible disk."""


@dataclass(frozen=True)
class PriorMap:
    """A real magnetogram rotated to a frame's time, in the model frame.

    Attributes
    ----------
    gauss : numpy.ndarray
        float32 (H, W) Gauss, clipped to +-200 G; 0 where unseen, NaN off the disk.
    seen : numpy.ndarray
        bool (H, W): the source point was on the prior's visible disk.
    age_h : float
        Hours from the prior's observation to the frame's.
    provenance : dict
        Where it came from (``obs_time``, ``origin``, ``sha256``, ...), for products.
    """

    gauss: np.ndarray
    seen: np.ndarray
    age_h: float
    provenance: dict[str, Any] = field(default_factory=dict)


def rotate_prior(prior_gauss: np.ndarray, prior_time: Any, target_time: Any, geometry: Any,
                 prior_geometry: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``prior_gauss`` rotated differentially to ``target_time``, and where it saw anything.

    Parameters
    ----------
    prior_gauss : numpy.ndarray
        Model-frame field (Gauss, FITS row order, NaN or 0 off the disk) at ``prior_time``.
    prior_time, target_time : astropy.time.Time or str or datetime
        Observation times.
    geometry, prior_geometry : object
        Disk centre/radius of the target frame and of the prior (default the target's).

    Returns
    -------
    gauss : numpy.ndarray
        float32 Gauss clipped to +-200 G, 0 where unseen, NaN off the disk.
    seen : numpy.ndarray
        bool, True where the source point was on the prior's visible disk.
    """
    rotated = rotate_to(prior_gauss, prior_time, target_time, geometry,
                        prev_geometry=prior_geometry, clip_g=CLIP_GAUSS)
    ones = np.ones_like(np.asarray(prior_gauss, dtype=np.float32))
    coverage = rotate_to(ones, prior_time, target_time, geometry, prev_geometry=prior_geometry,
                         mu_correct=False, clip_g=None)
    seen = np.nan_to_num(coverage, nan=0.0) >= SEEN_MIN
    on = np.isfinite(rotated)
    out = np.where(seen, rotated, np.float32(0.0)).astype(np.float32)
    out[~on] = np.nan
    return out, seen & on


def prior_map(prior_gauss: np.ndarray, prior_time: Any, target_time: Any, geometry: Any,
              prior_geometry: Any = None, provenance: dict[str, Any] | None = None) -> PriorMap:
    """:func:`rotate_prior` wrapped with its age and provenance."""
    from sunpy.time import parse_time

    gauss, seen = rotate_prior(prior_gauss, prior_time, target_time, geometry, prior_geometry)
    age_h = float((parse_time(target_time) - parse_time(prior_time)).to_value("hour"))
    return PriorMap(gauss=gauss, seen=seen, age_h=age_h, provenance=dict(provenance or {}))


def model_inputs(prior: PriorMap | None, shape: tuple[int, int], halpha_sign: int = 1) -> dict[str, np.ndarray]:
    """The nowcast's prior inputs, batch of one: model units, 0 where unseen or off the disk.

    ``prior`` None gives the no-prior inputs (all unseen, age 0); the service serves such a
    minute with the H-alpha-only model instead, but the graph accepts them. ``halpha_sign``:
    the Hale sign of the frame's cycle against the generator's training cycle
    (``service.science.cycles.polarity_sign``), which the graph applies to its H-alpha-only field.
    """
    if prior is None:
        field_ = np.zeros(shape, np.float32)
        seen = np.zeros(shape, np.float32)
        age = 0.0
    else:
        field_ = gauss_to_model(np.nan_to_num(prior.gauss, nan=0.0)).astype(np.float32)
        seen = prior.seen.astype(np.float32)
        age = prior.age_h
    return {
        "prior": np.ascontiguousarray(field_[None, None]),
        "prior_seen": np.ascontiguousarray(seen[None, None]),
        "prior_age_h": np.full((1, 1), age, np.float32),
        "halpha_sign": np.full((1, 1), float(halpha_sign), np.float32),
    }
