"""Metrics for synthetic magnetograms, in Gauss, in 2-D, on the solar disk.

Every function takes a prediction and a reference (``truth``) as 2-D arrays in
Gauss and an optional boolean disk ``mask``. Pixels that are NaN or infinite in
either map are off-disk, whatever the mask says. Everything is vectorised: a
1024x1024 pair scores in about a tenth of a second.

The definitions are the ones of Gao et al. (2023, the PSNR/SSIM/CC/PPA of the
Ha2Mag paper) with the defects of the released code fixed (its "CC" was
``(1 + r) / 2``, its SSIM ran on a 1-D raster with the image maximum as data
range): see :func:`score` for the exact choices.

Disk geometry
-------------
The flux metrics need ``mu = cos(theta)`` (theta: angle between the line of
sight and the local vertical). It comes from a geometry object with a disk
centre (``center`` or ``center_px``: ``(cx, cy)``, 0-based pixels, x = column)
and ``radius_px``; :class:`DiskGeometry` is the minimal one and
``service.science.preprocess.ModelGeometry`` fits too. Without one, the
geometry is fitted to the mask (:func:`fit_disk`): centroid and equal-area
radius, exact to a small fraction of a pixel for a full disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from service.science.regions import Region, bounding_box, detect_regions

DATA_RANGE_G = 400.0
"""Data range for PSNR and SSIM: the data are clipped at +-200 G. Never the image max."""

PPA_THRESHOLDS_G: tuple[int, ...] = (0, 5, 10, 20, 30, 40, 50)
"""|B| thresholds of the pixel-to-pixel polarity accuracy (Gao et al. 2023, Table 2)."""

SSIM_SIGMA_PX = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 px: the 11x11 window of Wang et al. (2004)
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_MIN_WINDOW_ON_DISK = 0.5
"""A pixel enters the SSIM mean when at least this much of its window weight lies on the disk."""

BIN = 8
"""Block size of ``r_bin8``; only blocks entirely on the disk are used."""

FLUX_MU_MIN = 0.3
"""Fluxes sum pixels with mu >= 0.3 only (within 72.5 deg of disk centre).

Measured on the val HMI days: with mu merely clipped at 0.1 (weights up to 100),
55-75 % of the truth's unsigned flux came from the mu < 0.3 ring (4.6 % of the
radius), where the 1/mu^2 radial-field weight multiplies noise and transverse
field; flux ratios then measured the limb, not the active regions.
"""

RSUN_CM = 6.957e10
"""Nominal solar radius (IAU 2015 B3), for fluxes in Maxwell."""

NETFLUX_MIN_FRACTION = 1e-9
"""|net truth flux| below this fraction of its unsigned flux counts as zero: netflux_ratio is NaN."""


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class DiskGeometry:
    """Where the solar disk is on the image (orthographic, the observer at ~1 AU).

    Attributes
    ----------
    center : tuple of float
        Disk centre ``(cx, cy)``, 0-based pixels, ``cx`` a column.
    radius_px : float
        Disk radius in pixels.
    """

    center: tuple[float, float]
    radius_px: float


def geometry_of(geometry: Any) -> DiskGeometry:
    """Read ``(center or center_px, radius_px)`` from any geometry object."""
    if isinstance(geometry, DiskGeometry):
        return geometry
    center = getattr(geometry, "center", None)
    if center is None:
        center = getattr(geometry, "center_px", None)
    radius = getattr(geometry, "radius_px", None)
    if center is None or radius is None:
        raise ValueError(f"geometry {geometry!r} has no center/center_px and radius_px")
    radius = float(getattr(radius, "value", radius))
    cx, cy = (float(getattr(c, "value", c)) for c in center)
    return DiskGeometry((cx, cy), radius)


def fit_disk(mask: np.ndarray) -> DiskGeometry:
    """Fit a disk to a boolean mask: centroid and the radius of a disk of equal area.

    Holes (e.g. saturated pixels decoded as off-disk) are filled first.
    """
    filled = ndimage.binary_fill_holes(mask)
    n = int(filled.sum())
    if n == 0:
        raise ValueError("cannot fit a disk to an empty mask")
    cy, cx = ndimage.center_of_mass(filled)
    return DiskGeometry((float(cx), float(cy)), float(np.sqrt(n / np.pi)))


def disk_mask(shape: tuple[int, int], geometry: Any) -> np.ndarray:
    """Pixels whose centre lies within the disk of ``geometry``."""
    g = geometry_of(geometry)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (xx - g.center[0]) ** 2 + (yy - g.center[1]) ** 2 <= g.radius_px**2


def mu_map(shape: tuple[int, int], geometry: Any) -> np.ndarray:
    """``mu = cos(theta) = sqrt(1 - rho^2)`` per pixel (rho: distance from centre / radius).

    0 outside the disk. Orthographic: the ~0.3 % perspective of an observer at 1 AU is ignored.
    """
    g = geometry_of(geometry)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    rho2 = ((xx - g.center[0]) ** 2 + (yy - g.center[1]) ** 2) / g.radius_px**2
    return np.sqrt(np.clip(1.0 - rho2, 0.0, None))


# --------------------------------------------------------------------------- helpers
def _prepare(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes; return float64 maps (0 off-disk) and the effective mask."""
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.ndim != 2 or truth.ndim != 2:
        raise ValueError(f"maps must be 2-D, got pred {pred.shape} and truth {truth.shape}")
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs truth {truth.shape}")
    valid = np.isfinite(pred) & np.isfinite(truth)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != truth.shape:
            raise ValueError(f"shape mismatch: mask {mask.shape} vs maps {truth.shape}")
        valid &= mask.astype(bool)
    if not valid.any():
        raise ValueError("no on-disk pixels: the mask is empty or every pixel is NaN")
    p = np.where(valid, pred, 0.0).astype(np.float64)
    t = np.where(valid, truth, 0.0).astype(np.float64)
    return p, t, valid


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D samples; NaN when either is constant or has < 2 values."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2:
        return float("nan")
    da = a - a.mean()
    db = b - b.mean()
    den = np.sqrt(np.dot(da, da) * np.dot(db, db))
    if den == 0.0:
        return float("nan")
    return float(np.clip(np.dot(da, db) / den, -1.0, 1.0))


def psnr_from_mse(mse: float) -> float:
    """``10 log10(400^2 / MSE)``; +inf for identical maps."""
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE_G**2 / mse))


def ppa(pred_values: np.ndarray, truth_values: np.ndarray) -> tuple[dict[str, float], dict[str, int]]:
    """Pixel-to-pixel polarity accuracy at each threshold of :data:`PPA_THRESHOLDS_G`.

    Among pixels with ``|truth| > t`` (strictly: at t = 0 that is ``truth != 0``), the
    fraction where ``sign(pred) == sign(truth)``; a zero prediction has no sign and
    counts as wrong. NaN when no pixel passes the threshold. Returns the accuracies
    and the pixel counts (for pooling over images), both keyed ``"0"``, ``"5"``, ...
    """
    abs_t = np.abs(truth_values)
    same = np.sign(pred_values) == np.sign(truth_values)
    acc: dict[str, float] = {}
    counts: dict[str, int] = {}
    for t in PPA_THRESHOLDS_G:
        sel = abs_t > t
        n = int(sel.sum())
        counts[str(t)] = n
        acc[str(t)] = float(np.count_nonzero(same & sel) / n) if n else float("nan")
    return acc, counts


def ssim_map(p: np.ndarray, t: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D SSIM map (Wang et al. 2004) with mask-normalised Gaussian windows.

    Local means, variances and covariance are Gaussian-weighted (sigma 1.5 px, 11x11)
    over on-disk pixels only: each filtered quantity is divided by the filtered mask,
    so off-disk pixels neither enter nor pull the statistics to zero. Population
    (not sample) moments, as in Wang et al. ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``,
    ``L = 400 G``. Returns the map and the pixels where it is defined: on the disk
    with at least :data:`SSIM_MIN_WINDOW_ON_DISK` of the window weight on the disk
    (this drops about the outermost pixel ring at the limb).
    ``p`` and ``t`` must be 0 off the disk (as :func:`_prepare` gives them).
    """
    def g(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, SSIM_SIGMA_PX, truncate=SSIM_TRUNCATE, mode="constant")

    # Only the disk's bounding box: outside it all inputs are 0, as the filter's
    # zero boundary assumes, so the result is the same and ~25 % cheaper.
    box = bounding_box(valid)
    p, t, v = p[box], t[box], valid[box]
    w = g(v.astype(np.float64))
    inv = np.zeros_like(w)
    np.divide(1.0, w, out=inv, where=w > 1e-12)
    mx, my = g(p) * inv, g(t) * inv
    sxx = g(p * p) * inv - mx * mx
    syy = g(t * t) * inv - my * my
    sxy = g(p * t) * inv - mx * my
    c1 = (SSIM_K1 * DATA_RANGE_G) ** 2
    c2 = (SSIM_K2 * DATA_RANGE_G) ** 2
    smap = np.zeros(valid.shape)
    smap[box] = ((2 * mx * my + c1) * (2 * sxy + c2)) / (
        (mx * mx + my * my + c1) * (sxx + syy + c2)
    )
    use = np.zeros_like(valid)
    use[box] = v & (w >= SSIM_MIN_WINDOW_ON_DISK)
    return smap, use


def _blocks(p: np.ndarray, t: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8x8 block means of both maps over blocks lying entirely on the disk.

    Trailing rows/columns that do not fill a block are dropped.
    """
    h, w = (valid.shape[0] // BIN) * BIN, (valid.shape[1] // BIN) * BIN
    shape = (h // BIN, BIN, w // BIN, BIN)
    full = valid[:h, :w].reshape(shape).all(axis=(1, 3))
    pb = p[:h, :w].reshape(shape).mean(axis=(1, 3))[full]
    tb = t[:h, :w].reshape(shape).mean(axis=(1, 3))[full]
    return pb, tb


def _binned_r(p: np.ndarray, t: np.ndarray, valid: np.ndarray) -> tuple[float, int]:
    """Pearson r of 8x8 block means over blocks lying entirely on the disk."""
    pb, tb = _blocks(p, t, valid)
    return pearson(pb, tb), int(pb.size)


def r_bin8_split(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Where ``r_bin8`` is lost: field magnitude and location, or polarity.

    A diagnostic beside :func:`score`, not a score to select on: two of its values use
    the truth. On the 8x8 block means ``p``, ``t``:

    - ``signed``: ``r(p, t)``, the ``r_bin8`` of :func:`score`;
    - ``unsigned``: ``r(|p|, |t|)``, where the field is and how strong, polarity aside;
    - ``own_sign``: ``r(sign(p) |t|, t)``, the truth's magnitudes with the prediction's
      signs (1 when every block's polarity is right);
    - ``true_sign``: ``r(sign(t) |p|, t)``, the prediction's magnitudes with the truth's
      signs: the most this prediction reaches with perfect polarity.
    """
    p, t, valid = _prepare(pred, truth, mask)
    pb, tb = _blocks(p, t, valid)
    return {
        "signed": pearson(pb, tb),
        "unsigned": pearson(np.abs(pb), np.abs(tb)),
        "own_sign": pearson(np.sign(pb) * np.abs(tb), tb),
        "true_sign": pearson(np.sign(tb) * np.abs(pb), tb),
    }


def flux_weights(
    shape: tuple[int, int], geometry: Any, mu_min: float = FLUX_MU_MIN
) -> np.ndarray:
    """Per-pixel factor turning B_los (G) into radial flux through the sphere (Mx).

    A pixel of plane-of-sky area ``A`` covers ``A / mu`` of the solar surface, and in
    the radial-field approximation ``B_r = B_los / mu``. The flux through that surface
    element is ``B_r * A / mu = B_los * A / mu^2``. ``A = (R_sun / radius_px)^2`` in cm^2,
    so fluxes come out in Maxwell. Pixels with ``mu < mu_min`` (default
    :data:`FLUX_MU_MIN`) get weight 0 (the weight is then at most ~11 A), so the noisy,
    foreshortened limb cannot dominate.
    """
    g = geometry_of(geometry)
    mu = mu_map(shape, g)
    w = np.zeros(shape)
    np.divide((RSUN_CM / g.radius_px) ** 2, mu * mu, out=w, where=mu >= mu_min)
    return w


def _fluxes(p: np.ndarray, t: np.ndarray, valid: np.ndarray, geometry: Any) -> dict[str, float]:
    w = flux_weights(valid.shape, geometry)[valid]
    pv, tv = p[valid], t[valid]
    tumf_p, tumf_t = float(np.dot(np.abs(pv), w)), float(np.dot(np.abs(tv), w))
    net_p, net_t = float(np.dot(pv, w)), float(np.dot(tv, w))
    tumf_ratio = tumf_p / tumf_t if tumf_t > 0 else float("nan")
    if tumf_t > 0 and abs(net_t) > NETFLUX_MIN_FRACTION * tumf_t:
        net_ratio = net_p / net_t
    else:
        net_ratio = float("nan")
    return {
        "tumf_ratio": tumf_ratio,
        "netflux_ratio": net_ratio,
        # Stable companion of netflux_ratio when the truth is nearly balanced.
        "netflux_delta_frac": (net_p - net_t) / tumf_t if tumf_t > 0 else float("nan"),
        "tumf_pred_mx": tumf_p,
        "tumf_truth_mx": tumf_t,
        "netflux_pred_mx": net_p,
        "netflux_truth_mx": net_t,
    }


# --------------------------------------------------------------------------- scores
def score(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None = None,
    geometry: Any = None,
    *,
    regions: bool = False,
) -> dict[str, Any]:
    """Score a magnetogram against a reference, both in Gauss, on the disk.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        2-D maps in Gauss, same shape. NaN/inf in either is off-disk.
    mask : numpy.ndarray of bool, optional
        On-disk pixels; default: every pixel finite in both maps.
    geometry : optional
        Disk centre and radius (see module docstring) for mu; default fitted to the mask.
    regions : bool
        Also add the active-region metrics of :func:`score_regions` (sharing the SSIM
        map, so cheaper than two calls).

    Returns
    -------
    dict
        ``n_pixels``; ``mse`` (G^2); ``psnr`` (dB, data range fixed at 400 G, +inf for
        identical maps); ``ssim`` (2-D, see :func:`ssim_map`; mean over its defined
        pixels); ``r`` (Pearson over disk pixels; NaN if either map is constant, e.g.
        the zero baseline); ``r_bin8`` and ``n_bins8`` (Pearson of 8x8 block means over
        blocks entirely on the disk); ``ppa`` and ``ppa_n`` (see :func:`ppa`);
        ``tumf_ratio`` (total unsigned flux pred / truth) and ``netflux_ratio`` (net
        signed flux pred / truth; NaN when the truth's net flux is zero, i.e. below
        :data:`NETFLUX_MIN_FRACTION` of its unsigned flux), ``netflux_delta_frac``
        ((net pred - net truth) / unsigned truth, defined also for balanced truth), and
        the fluxes in Mx (pixels with mu >= :data:`FLUX_MU_MIN`, see
        :func:`flux_weights`). Plain Python numbers, JSON-ready except for inf/NaN.

    Raises
    ------
    ValueError
        Maps not 2-D, shapes differ, or no pixel on the disk.
    """
    p, t, valid = _prepare(pred, truth, mask)
    pv, tv = p[valid], t[valid]
    n = int(valid.sum())
    diff = pv - tv
    mse = float(np.dot(diff, diff) / n)
    smap, use = ssim_map(p, t, valid)
    r8, n8 = _binned_r(p, t, valid)
    acc, counts = ppa(pv, tv)
    geom = geometry_of(geometry) if geometry is not None else fit_disk(valid)
    out = {
        "n_pixels": n,
        "mse": mse,
        "psnr": psnr_from_mse(mse),
        "ssim": float(smap[use].mean()) if use.any() else float("nan"),
        "r": pearson(pv, tv),
        "r_bin8": r8,
        "n_bins8": n8,
        "ppa": acc,
        "ppa_n": counts,
        **_fluxes(p, t, valid, geom),
    }
    out.update(_registered(p, t, valid, geom, regions=False))
    if regions:
        out.update(_score_regions(p, t, valid, geom, detect_regions(t, valid), (smap, use)))
    return out


def _registered(p: np.ndarray, t: np.ndarray, pixels: np.ndarray, geom: DiskGeometry, *, regions: bool) -> dict[str, float]:
    """The metrics of the table that bring their own ``compute`` (``metric_table.register``)."""
    from service.science.metric_table import METRICS

    return {m.key: float(m.compute(p, t, pixels, geom)) for m in METRICS
            if m.compute is not None and m.regions == regions}


def score_regions(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None = None,
    geometry: Any = None,
    *,
    regions: list[Region] | None = None,
) -> dict[str, Any]:
    """Active-region metrics: the boxes found on the truth, applied to both maps.

    ``regions`` default to :func:`service.science.regions.detect_regions` on ``truth``.
    The AR pixels are the on-disk pixels inside any region box. All ``ar_*`` metrics
    are POOLED over the AR pixels of the image (one MSE, one r, one PPA over all of
    them), not averaged over regions: ``ar_psnr`` from their MSE, ``ar_ssim`` the mean
    of the full-disk SSIM map (:func:`ssim_map`) over them, ``ar_r`` Pearson, ``ar_ppa``
    (with ``ar_ppa_n``). ``region_sign_agreement``: fraction of regions whose net flux
    (mu-weighted as in :func:`flux_weights`) has the same sign in pred as in truth.
    ``regions`` lists each box with its truth and pred net fluxes (Mx). With no region,
    every value is NaN and ``n_regions`` is 0.
    """
    p, t, valid = _prepare(pred, truth, mask)
    if regions is None:
        regions = detect_regions(t, valid)
    geom = geometry_of(geometry) if geometry is not None else fit_disk(valid)
    return _score_regions(p, t, valid, geom, regions, None)


def _score_regions(
    p: np.ndarray,
    t: np.ndarray,
    valid: np.ndarray,
    geom: DiskGeometry,
    regions: list[Region],
    ssim: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    nan = float("nan")
    out: dict[str, Any] = {
        "n_regions": len(regions),
        "ar_n_pixels": 0,
        "ar_psnr": nan,
        "ar_ssim": nan,
        "ar_r": nan,
        "ar_ppa": {str(k): nan for k in PPA_THRESHOLDS_G},
        "ar_ppa_n": {str(k): 0 for k in PPA_THRESHOLDS_G},
        "region_sign_agreement": nan,
        "regions": [],
    }
    if not regions:
        return out
    in_ar = np.zeros_like(valid)
    for reg in regions:
        in_ar[reg.slice_y, reg.slice_x] = True
    in_ar &= valid
    n = int(in_ar.sum())
    if n == 0:
        return out
    pv, tv = p[in_ar], t[in_ar]
    diff = pv - tv
    smap, use = ssim if ssim is not None else ssim_map(p, t, valid)
    use = use & in_ar
    acc, counts = ppa(pv, tv)
    w = flux_weights(valid.shape, geom)
    agree = []
    listing = []
    for reg in regions:
        box = valid[reg.slice_y, reg.slice_x]
        ww = w[reg.slice_y, reg.slice_x][box]
        net_t = float(np.dot(t[reg.slice_y, reg.slice_x][box], ww))
        net_p = float(np.dot(p[reg.slice_y, reg.slice_x][box], ww))
        agree.append(np.sign(net_t) == np.sign(net_p) and net_t != 0)
        listing.append({**reg.as_dict(), "netflux_truth_mx": net_t, "netflux_pred_mx": net_p})
    out.update(
        ar_n_pixels=n,
        ar_psnr=psnr_from_mse(float(np.dot(diff, diff) / n)),
        ar_ssim=float(smap[use].mean()) if use.any() else nan,
        ar_r=pearson(pv, tv),
        ar_ppa=acc,
        ar_ppa_n=counts,
        region_sign_agreement=float(np.mean(agree)),
        regions=listing,
    )
    out.update(_registered(p, t, in_ar, geom, regions=True))
    return out
