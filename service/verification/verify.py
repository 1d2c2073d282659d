"""Score products against the real magnetogram of their minute, with the baselines beside them.

For one product (:func:`assess`): the truth is the source's usable magnetogram nearest
the product's time (:meth:`~service.sources.magnetograms.base.MagnetogramSource.nearest`),
brought into the model frame (:func:`service.verification.prep.to_model_frame`) and
clipped to +-200 G like the training data (the model cannot say more); persistence is
the newest magnetogram at least :data:`PERSISTENCE_MIN_AGE` older (at most
:data:`PERSISTENCE_MAX_AGE`), rotated differentially to the product's time
(:func:`service.science.rotation.rotate_to`): what a forecaster has without synmag. The
model, the zero map and persistence are scored with
:func:`service.science.metrics.score` (regions included) on the same pixels.

The service (:func:`verify_pending`, run by the scheduler) stores the result in
``Product.verification`` (JSON, NaN/inf as null) and, for the newest verified
observation, sets ``synmag_verification_score{metric,reference}``; ``synmag verify``
prints it for product files.

The truth is not rotated: it is of the product's minute (within 6 min: under 0.06 model
pixel of rotation at disk centre).
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import observability as obs
from service.db import Product, json_safe, utcnow
from service.errors import RetryableError
from service.science.metric_table import flat_scores
from service.science.metrics import DiskGeometry, score
from service.sources.magnetograms.base import (
    TRUTH_MAX_OFFSET,
    MagnetogramRejected,
    MagnetogramSource,
)
from service.storage import ObjectStore
from service.verification.prep import to_model_frame
from service.vocabulary import Reference, VerificationOutcome

log = logging.getLogger(__name__)

CLIP_GAUSS = 200.0
# One-day persistence: the newest magnetogram at least a day older than the product, to
# the half-window of a 720 s record (daily data sets' times jitter by a minute), at most two.
PERSISTENCE_MIN_AGE = timedelta(hours=24) - TRUTH_MAX_OFFSET
PERSISTENCE_MAX_AGE = timedelta(hours=48)
# A product without truth yet is tried again after this, for this long (JSOC nrt lags ~1 h).
RETRY_NO_TRUTH = timedelta(minutes=30)
GIVE_UP_AFTER = timedelta(days=3)
_newest_verified = 0.0


def read_product(data: bytes) -> tuple[np.ndarray, Any, DiskGeometry]:
    """Product FITS bytes -> (Gauss in FITS rows, header, disk geometry)."""
    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as hdul:
        header = hdul[0].header.copy()
        gauss = np.asarray(hdul[0].data, dtype=np.float32)
    geometry = DiskGeometry((float(header["CRPIX1"]) - 1.0, float(header["CRPIX2"]) - 1.0),
                            float(header["R_SUN"]))
    return gauss, header, geometry


def _block(result: dict[str, Any]) -> dict[str, Any]:
    """The stored scores of one map: every metric of the table, pixel count, PPA by threshold."""
    return {**flat_scores(result), "n_pixels": result["n_pixels"], "ppa": result["ppa"],
            "n_regions": result.get("n_regions")}


def score_against(pred: np.ndarray, truth: np.ndarray, geometry: DiskGeometry,
                  persistence: np.ndarray | None = None) -> dict[str, Any]:
    """Model, zero-map (and persistence) scores on the pixels on the disk in the product and truth.

    ``truth`` is clipped to +-:data:`CLIP_GAUSS` here. Returns ``{"model", "zero",
    "persistence"}`` blocks (``persistence`` None when not given).
    """
    truth = np.clip(truth, -CLIP_GAUSS, CLIP_GAUSS)
    mask = np.isfinite(pred) & np.isfinite(truth)
    out: dict[str, Any] = {
        Reference.MODEL: _block(score(pred, truth, mask, geometry, regions=True)),
        Reference.ZERO: _block(score(np.zeros_like(truth), truth, mask, geometry, regions=True)),
        Reference.PERSISTENCE: None,
    }
    if persistence is not None:
        filled = np.where(np.isfinite(persistence), persistence, np.float32(0.0))
        out[Reference.PERSISTENCE] = _block(score(filled, truth, mask, geometry, regions=True))
    return out


def persistence_for(source: MagnetogramSource, obs_time: datetime,
                    geometry: DiskGeometry) -> tuple[np.ndarray | None, dict[str, Any]]:
    """One-day persistence on the product's grid, and where it came from (or why there is none)."""
    from astropy.time import Time

    prev = source.newest_before(obs_time, PERSISTENCE_MIN_AGE, PERSISTENCE_MAX_AGE)
    if prev is None:
        return None, {"missing": f"no usable magnetogram from {source.name} observed "
                                 f"{PERSISTENCE_MIN_AGE.total_seconds() / 3600:g}-"
                                 f"{PERSISTENCE_MAX_AGE.total_seconds() / 3600:g} h before the product"}
    try:
        prev_gauss, prev_geometry = to_model_frame(prev)
    except MagnetogramRejected as exc:
        return None, {"missing": f"{prev.origin} {prev.obs_time.isoformat()}: {exc}"}
    rotated = rotate(prev_gauss, Time(prev.obs_time.replace(tzinfo=None), scale="utc"),
                     Time(obs_time.astimezone(UTC).replace(tzinfo=None), scale="utc"), geometry, prev_geometry)
    age_h = (obs_time - prev.obs_time).total_seconds() / 3600.0
    return rotated, {**prev.describe(), "age_h": age_h}


def rotate(prev_gauss: np.ndarray, prev_time: Any, target_time: Any, geometry: Any, prev_geometry: Any) -> np.ndarray:
    """``rotation.rotate_to`` of a model-frame map (row 0 south), clipped as the data are."""
    from service.science.rotation import rotate_to

    return rotate_to(prev_gauss, prev_time, target_time, geometry, prev_geometry=prev_geometry,
                     clip_g=CLIP_GAUSS)


def assess(pred: np.ndarray, geometry: DiskGeometry, obs_time: datetime, input_file: str | None,
           source: MagnetogramSource) -> dict[str, Any]:
    """The verification document of one product map (not stored; JSON-safe).

    ``{"status": "scored", "source", "truth": {...}, "persistence_source": {...},
    "model": {...}, "zero": {...}, "persistence": {...} | None}`` or ``{"status":
    "no_truth", "source", "reason"}``. Raises ``RetryableError`` when the source is
    unreachable.
    """
    truth = source.nearest(obs_time, input_file)
    if truth is None:
        return {"status": VerificationOutcome.NO_TRUTH, "source": source.name,
                "reason": f"no usable magnetogram from {source.name} within "
                          f"{TRUTH_MAX_OFFSET.total_seconds() / 60:g} min of {obs_time.isoformat()}"}
    try:
        truth_gauss, _ = to_model_frame(truth)
    except MagnetogramRejected as exc:
        return {"status": VerificationOutcome.NO_TRUTH, "source": source.name,
                "reason": f"{truth.origin} {truth.obs_time.isoformat()}: {exc}"}
    if truth_gauss.shape != pred.shape:
        raise ValueError(f"product shape {pred.shape} is not the model frame's {truth_gauss.shape}")
    persistence, persistence_source = persistence_for(source, obs_time, geometry)
    doc = {
        "status": VerificationOutcome.SCORED, "source": source.name,
        "truth": {**truth.describe(), "offset_s": (truth.obs_time - obs_time).total_seconds(),
                  "clip_gauss": CLIP_GAUSS},
        "persistence_source": persistence_source,
        **score_against(pred, truth_gauss, geometry, persistence),
    }
    return json_safe(doc)


def export(result: dict[str, Any], obs_unix: float) -> None:
    """Set the gauges from the newest verified observation (older ones only count)."""
    global _newest_verified
    obs.verification_total.labels(outcome=VerificationOutcome.SCORED).inc()
    if obs_unix < _newest_verified:
        return
    _newest_verified = obs_unix
    obs.verification_last_timestamp_seconds.set(obs_unix)
    for reference in obs.VERIFICATION_REFERENCES:
        block = result.get(reference) or {}
        for metric in obs.verification_metrics():
            value = block.get(metric)
            obs.verification_score.labels(metric=metric, reference=reference).set(
                float("nan") if value is None else float(value))


def verify_product(session: Session, store: ObjectStore, product: Product,
                   source: MagnetogramSource) -> dict[str, Any]:
    """Verify one product; store and return its ``verification`` document."""
    frame = product.input_frame
    pred, _, geometry = read_product(store.get(store.key_for(product.fits_uri)))
    try:
        doc = assess(pred, geometry, product.obs_time, frame.filename if frame is not None else None, source)
    except RetryableError as exc:
        obs.verification_total.labels(outcome=VerificationOutcome.FAILED).inc()
        log.warning("verification of product %s: %s", product.id, exc)
        raise
    now = utcnow()
    if doc["status"] == VerificationOutcome.NO_TRUTH:
        obs.verification_total.labels(outcome=VerificationOutcome.NO_TRUTH).inc()
        doc["checked_at"] = now.isoformat()
    else:
        doc["verified_at"] = now.isoformat()
        export(doc, product.obs_time.timestamp())
    product.verification = doc
    session.add(product)
    return doc


def due(product: Product, now: datetime) -> bool:
    """Whether ``product`` should be (re)tried: never verified, or no truth yet and not too old."""
    v = product.verification
    if not v:
        return True
    if v.get("status") != VerificationOutcome.NO_TRUTH or now - product.obs_time > GIVE_UP_AFTER:
        return False
    checked = datetime.fromisoformat(v["checked_at"])
    return now - checked >= RETRY_NO_TRUTH


def verify_pending(sessions: Any, store: ObjectStore, source: MagnetogramSource, limit: int = 5) -> int:
    """Verify up to ``limit`` recent products that are due; returns how many were scored.

    ``sessions`` is a sessionmaker or engine (``service.db.session_scope``). Each
    product commits on its own, so one failure loses nothing already scored.
    """
    from service.db import session_scope

    now = datetime.now(UTC)
    with session_scope(sessions) as s:
        recent = s.scalars(select(Product).where(Product.obs_time >= now - GIVE_UP_AFTER)
                           .order_by(Product.obs_time.desc()).limit(200)).all()
        todo = [p.id for p in recent if due(p, now)][:limit]
    scored = 0
    for pid in todo:
        try:
            with session_scope(sessions) as s:
                doc = verify_product(s, store, s.get(Product, pid), source)
                scored += doc["status"] == VerificationOutcome.SCORED
        except RetryableError:
            continue
        except Exception:  # a bad product must not stop the others
            obs.verification_total.labels(outcome=VerificationOutcome.FAILED).inc()
            log.exception("verification of product %s failed", pid)
    return scored
