"""H-alpha frame -> model frame, and model output -> Gauss: the one versioned transform.

Training and serving both go through this module, so they cannot disagree on
geometry, intensity scaling or units. Bump ``PREPROCESS_VERSION`` on any change to
the forward or inverse transform; models carry the version they were trained for
(``synmag.preprocess_version``) and are refused when it differs.

Model frame (measured on the Ha2Mag training data, see ``MODEL_CENTER``):
1024x1024, solar north up, disk centre ``MODEL_CENTER`` (0-based, x = column),
radius ``MODEL_RADIUS_PX``, off-disk 0. The plate scale therefore follows the
Sun-Earth distance: ``arcsec_per_px = rsun_arcsec / MODEL_RADIUS_PX``.

Row order. Model-frame arrays use the FITS convention: row 0 is solar *south*, rows
grow northward, columns grow westward ("north up" when drawn with ``origin="lower"``).
The Ha2Mag arrays, as ``numpy.asarray(PIL.Image.open(webp))`` gives them, are in this
order too: the dataset's authors wrote the FITS arrays to images row for row. Measured,
not assumed: in the HMI arrays the regions of rows < 512 have positive leading polarity
and those of rows > 512 negative (Hale's law of cycle 24: south leads positive), and
day-to-day differential rotation fits B0 only with row 0 = south. GONG frames and
products are FITS arrays, so no array is ever flipped between archive, model and product.

Intensities: the frame's on-disk distribution is mapped linearly onto the training
data's (``data/halpha_reference.json``) by matching the median and the 5th
percentile. A linear map absorbs site gain and additive sky / scattered light and
keeps the day's own contrast (no histogram equalisation). Limb darkening is kept:
the dataset has it (centre ~203, ~145 at 0.98 R) and so do GONG frames (the NSO
pipeline's ``DISKPRO`` coefficients are 0, nothing is removed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from service.errors import FrameRejected
from service.science.dataset import disk_mask

if TYPE_CHECKING:
    from astropy.time import Time

    from service.science.frame import HalphaFrame

PREPROCESS_VERSION = "1"

MODEL_SIZE = 1024
# Measured on ha2mag train+val (22 days across 2013-01..2014-07, every 25th file):
# the on-disk region (value > 0) has centroid (512.03 +- 0.03, 512.02 +- 0.03) and
# area radius sqrt(N/pi) = 450.49 +- 0.02 px for H-alpha (HMI: 512.00, 449.98); an
# algebraic circle fit to the edge pixels gives 450.08 +- 0.03. The radius does NOT
# follow the season (Earth distance): GONG's pipeline resamples every frame to a
# 900 px radius and the dataset is 2x2 binned. Pixel-mask agreement is best for
# "distance from (512, 512) <= 450" (0.3 % of disk pixels differ, all on the rim).
MODEL_CENTER: tuple[float, float] = (512.0, 512.0)
MODEL_RADIUS_PX = 450.0
# The data are clipped at +-200 G: model output y in [-1, 1] -> Gauss = 200 y.
GAUSS_SCALE = 200.0

# Percentiles anchoring the linear intensity map (keys of the reference JSON).
# p5 and p50 were chosen because their difference is the most stable across the
# training days (coefficient of variation 3.6 %, against 5.8 % for p5..p95): it is
# set by limb darkening and the quiet chromosphere, not by the day's plage.
_LOW, _MID = "5", "50"
# Pixels this far inside the rim are used for statistics (rim pixels are partial).
_STATS_INSET_PX = 0.5


# ---------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------
def halpha_to_model(v: np.ndarray) -> np.ndarray:
    """Dataset H-alpha (0..255) -> model input units, ``x = v / 127.5 - 1``."""
    return (np.asarray(v, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def model_to_halpha(x: np.ndarray) -> np.ndarray:
    """Model input units -> dataset H-alpha scale (0..255), the inverse of ``halpha_to_model``."""
    return ((np.asarray(x, dtype=np.float32) + np.float32(1.0)) * np.float32(127.5)).astype(np.float32)


def model_to_gauss(y: np.ndarray) -> np.ndarray:
    """Model output units -> Gauss (``GAUSS_SCALE * y``)."""
    return (np.asarray(y, dtype=np.float32) * np.float32(GAUSS_SCALE)).astype(np.float32)


def gauss_to_model(b: np.ndarray) -> np.ndarray:
    """Gauss -> model output units: clip to +-``GAUSS_SCALE`` then divide by it (NaN kept)."""
    b = np.asarray(b, dtype=np.float32)
    return (np.clip(b, -GAUSS_SCALE, GAUSS_SCALE) / np.float32(GAUSS_SCALE)).astype(np.float32)


def model_disk_mask(
    center: tuple[float, float] = MODEL_CENTER,
    radius_px: float = MODEL_RADIUS_PX,
    size: int = MODEL_SIZE,
) -> np.ndarray:
    """Boolean on-disk mask of the model frame: distance of pixel centres <= radius."""
    return disk_mask((size, size), center, radius_px)


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelGeometry:
    """Where the Sun is in a model-frame image and who looked at it.

    Attributes
    ----------
    center : (float, float)
        Disk centre, 0-based pixel (x = column, y = row) of the model-frame array
        (FITS row order: row 0 = south).
    radius_px : float
        Disk radius in pixels.
    arcsec_per_px : float
        Plate scale (both axes), ``rsun_arcsec / radius_px``.
    rsun_arcsec : float
        Apparent solar radius seen by the observer.
    obs_time : astropy.time.Time
        Observation time (UTC) of the input frame.
    dsun_m, hgln_deg, hglt_deg : float
        Observer: Sun distance and Stonyhurst longitude / latitude (Earth centre).
    size : int
        Image side in pixels.
    """

    center: tuple[float, float]
    radius_px: float
    arcsec_per_px: float
    rsun_arcsec: float
    obs_time: Time
    dsun_m: float
    hgln_deg: float
    hglt_deg: float
    size: int = MODEL_SIZE

    def mask(self) -> np.ndarray:
        """On-disk boolean mask of this geometry."""
        return model_disk_mask(self.center, self.radius_px, self.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``obs_time`` as ISO UTC string)."""
        out = asdict(self)
        out["center"] = [float(c) for c in self.center]
        out["obs_time"] = self.obs_time.utc.isot
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelGeometry:
        """Inverse of ``to_dict``."""
        from astropy.time import Time

        kw = dict(data)
        kw["center"] = (float(kw["center"][0]), float(kw["center"][1]))
        kw["obs_time"] = Time(kw["obs_time"], scale="utc")
        return cls(**kw)

    @classmethod
    def for_frame(cls, frame: HalphaFrame) -> ModelGeometry:
        """Model-frame geometry of a frame: its time, apparent radius and station."""
        observer = frame.observer_params()
        rsun_arcsec = float(frame.rsun_arcsec.to_value("arcsec"))
        return cls(
            center=MODEL_CENTER,
            radius_px=MODEL_RADIUS_PX,
            arcsec_per_px=rsun_arcsec / MODEL_RADIUS_PX,
            rsun_arcsec=rsun_arcsec,
            obs_time=frame.obs_time,
            dsun_m=observer["dsun_m"],
            hgln_deg=observer["hgln_deg"],
            hglt_deg=observer["hglt_deg"],
        )

    @classmethod
    def for_time(cls, obs_time: Time, rsun_arcsec: float | None = None) -> ModelGeometry:
        """Model-frame geometry of an observer at Earth's centre at ``obs_time``.

        For data without a GONG header (e.g. dataset days). ``rsun_arcsec`` defaults
        to the apparent radius of the photosphere (695.7 Mm, sunpy's convention).
        """
        from sunpy.coordinates import get_earth

        earth = get_earth(obs_time)
        dsun_m = float(earth.radius.to_value("m"))
        if rsun_arcsec is None:
            rsun_arcsec = math.degrees(math.asin(6.957e8 / dsun_m)) * 3600.0
        return cls(
            center=MODEL_CENTER,
            radius_px=MODEL_RADIUS_PX,
            arcsec_per_px=float(rsun_arcsec) / MODEL_RADIUS_PX,
            rsun_arcsec=float(rsun_arcsec),
            obs_time=obs_time,
            dsun_m=dsun_m,
            hgln_deg=float(earth.lon.to_value("deg")),
            hglt_deg=float(earth.lat.to_value("deg")),
        )


@dataclass
class ModelInput:
    """What the model sees, plus how it was made.

    Attributes
    ----------
    image : numpy.ndarray
        float32 (1024, 1024), model units (``halpha_to_model``), -1 off the disk.
    mask : numpy.ndarray
        bool on-disk mask.
    geometry : ModelGeometry
    intensity : dict
        Provenance of the intensity map: the frame's anchor percentiles, gain, offset,
        fraction of clipped pixels.
    """

    image: np.ndarray
    mask: np.ndarray
    geometry: ModelGeometry
    intensity: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# intensity reference
# ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def intensity_reference() -> dict[str, Any]:
    """The training data's on-disk H-alpha distribution (package data)."""
    text = resources.files("service.science").joinpath("data/halpha_reference.json").read_text()
    return json.loads(text)


# ---------------------------------------------------------------------------
# forward transform
# ---------------------------------------------------------------------------
def header_rotation_deg(header: Any) -> float:
    """Image rotation carried by a header (``CROTA2`` or a ``PC`` matrix), degrees CCW.

    Older GONG headers (``CTYPE1='GONGX'``) carry none: their images are solar
    north up. Newer ``HPLN-TAN`` headers may carry ``CROTA2`` or ``PCi_j``.
    """
    if header is None:
        return 0.0
    if "PC1_1" in header or "PC2_1" in header:
        pc11 = float(header.get("PC1_1", 1.0))
        pc21 = float(header.get("PC2_1", 0.0))
        cdelt1 = float(header.get("CDELT1", 1.0) or 1.0)
        cdelt2 = float(header.get("CDELT2", 1.0) or 1.0)
        return math.degrees(math.atan2(pc21 * cdelt2 / cdelt1, pc11))
    for key in ("CROTA2", "CROTA"):
        if key in header:
            return float(header[key])
    return 0.0


def resample_to_model(
    data: np.ndarray,
    center_px: tuple[float, float],
    radius_px: float,
    rotation_deg: float = 0.0,
    *,
    center: tuple[float, float] = MODEL_CENTER,
    model_radius_px: float = MODEL_RADIUS_PX,
    size: int = MODEL_SIZE,
) -> np.ndarray:
    """Affine zoom (+ rotation) of a full-disk image onto the model frame.

    The source disk (``center_px``, ``radius_px``) lands at (``center``,
    ``model_radius_px``). When shrinking (zoom ``model_radius_px / radius_px`` < 1)
    the source is first smoothed with a Gaussian of sigma ``(s - 1) / 2`` source
    pixels (``s`` the shrink factor) against aliasing, then sampled bilinearly.

    Parameters
    ----------
    data : numpy.ndarray
        Source image (2-D, finite on the disk) in FITS row order (row 0 = south).
    center_px : (float, float)
        Source disk centre, 0-based (x, y), FITS rows.
    radius_px : float
        Source disk radius in pixels.
    rotation_deg : float
        Rotation of the source image, CCW (``CROTA2`` convention): the output is
        rotated back to solar north up.

    Returns
    -------
    numpy.ndarray
        float32 (size, size) in FITS row order (row 0 = south), north up; 0 where
        the output samples fall outside the source.
    """
    src = np.asarray(data, dtype=np.float32)
    shrink = float(radius_px) / float(model_radius_px)
    if shrink > 1.0:
        src = ndimage.gaussian_filter(src, sigma=(shrink - 1.0) / 2.0, mode="nearest", truncate=3.0)
    theta = math.radians(rotation_deg)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    # Output column offset u is solar x (west), output row offset w solar y (north):
    # both arrays are in FITS row order. The source pixel offset is R(-theta) (u, w) *
    # shrink (CROTA2 convention: world = R(theta) pixel).
    idx = np.arange(size, dtype=np.float32)
    u = (idx - np.float32(center[0]))[None, :]
    w = (idx - np.float32(center[1]))[:, None]
    src_x = center_px[0] + shrink * (cos_t * u + sin_t * w)
    src_y = center_px[1] + shrink * (-sin_t * u + cos_t * w)
    src_x, src_y = np.broadcast_arrays(src_x, src_y)
    out = ndimage.map_coordinates(
        src, [src_y, src_x], order=1, mode="constant", cval=0.0, prefilter=False
    )
    return out.astype(np.float32, copy=False)


def match_intensity(
    image: np.ndarray, mask: np.ndarray, stats_mask: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """Linear map of on-disk intensities onto the training reference (0..255 scale).

    The frame's ``p50`` goes to the reference ``p50`` and its ``p50 - p5`` spread
    to the reference spread; the result is clipped to 0..255 and set to 0 off the
    disk (``mask``). Percentiles are taken on ``stats_mask`` (default ``mask``).
    Raises ``FrameRejected('flat_disk')`` when the disk has no contrast.
    """
    ref = intensity_reference()["percentiles"]
    stats_mask = mask if stats_mask is None else stats_mask
    lo, mid = np.percentile(image[stats_mask], [float(_LOW), float(_MID)])
    spread = float(mid - lo)
    if not np.isfinite(spread) or spread <= 1e-6 * max(abs(float(mid)), 1.0):
        raise FrameRejected("flat_disk", f"on-disk p{_LOW}..p{_MID} spread is {spread:.3g}")
    gain = (ref[_MID] - ref[_LOW]) / spread
    offset = ref[_MID] - gain * float(mid)
    out = image * np.float32(gain) + np.float32(offset)
    clipped = float(np.mean((out[mask] < 0) | (out[mask] > 255)))
    np.clip(out, 0.0, 255.0, out=out)
    out[~mask] = 0.0
    stats = {
        f"frame_p{_LOW}": float(lo),
        f"frame_p{_MID}": float(mid),
        f"ref_p{_LOW}": float(ref[_LOW]),
        f"ref_p{_MID}": float(ref[_MID]),
        "gain": float(gain),
        "offset": float(offset),
        "clipped_fraction": clipped,
    }
    return out.astype(np.float32, copy=False), stats


def preprocess(frame: HalphaFrame) -> ModelInput:
    """H-alpha frame -> model input (geometry, intensity, units).

    Raises
    ------
    service.errors.FrameRejected
        ``nan_pixels`` when the disk holds non-finite values, ``flat_disk`` when
        it has no contrast.
    """
    rotation = header_rotation_deg(getattr(frame, "header", None))
    resampled = resample_to_model(frame.data, frame.center_px, frame.radius_px, rotation)
    mask = model_disk_mask()
    stats_mask = model_disk_mask(radius_px=MODEL_RADIUS_PX - _STATS_INSET_PX)
    if not np.isfinite(resampled[mask]).all():
        raise FrameRejected("nan_pixels", "non-finite values on the solar disk")
    halpha, stats = match_intensity(resampled, mask, stats_mask)
    stats["rotation_deg"] = rotation
    geometry = ModelGeometry.for_frame(frame)
    return ModelInput(image=halpha_to_model(halpha), mask=mask, geometry=geometry, intensity=stats)


# ---------------------------------------------------------------------------
# inverse transform
# ---------------------------------------------------------------------------
def postprocess(y: np.ndarray, geometry: ModelGeometry) -> np.ndarray:
    """Model output (model units) -> float32 Gauss, NaN off the disk."""
    y = np.asarray(y, dtype=np.float32)
    if y.shape != (geometry.size, geometry.size):
        raise ValueError(f"model output shape {y.shape} != ({geometry.size}, {geometry.size})")
    gauss = model_to_gauss(y)
    gauss[~geometry.mask()] = np.nan
    return gauss
