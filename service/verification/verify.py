"""Score products against HMI, store the scores, export the gauges.

For one product: read its FITS from the store, get the truth for its
observation time, bring the truth to the product grid (unless it is already
there), clip it to +-200 G like the training data (the model cannot say more),
and score the model and the zero baseline beside it with
``service.science.metrics.score`` (regions included). The result goes to
``Product.verification`` (JSON, NaN/inf as null) and, for the newest verified
observation, to ``synmag_verification_score{metric,reference}``.
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
from service.science.metric_table import flat_scores, live_metrics
from service.science.metrics import DiskGeometry, score
from service.sources.magnetograms.base import MagnetogramSource
from service.storage import ObjectStore
from service.verification.prep import prep_to_frame
from service.vocabulary import VerificationOutcome

log = logging.getLogger(__name__)

CLIP_GAUSS = 200.0
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


def score_against(pred: np.ndarray, truth: np.ndarray, geometry: DiskGeometry) -> dict[str, Any]:
    """Model and zero-baseline scores on the pixels on the disk in both maps."""
    truth = np.clip(truth, -CLIP_GAUSS, CLIP_GAUSS)
    mask = np.isfinite(pred) & np.isfinite(truth)
    model = score(pred, truth, mask, geometry, regions=True)
    zero = score(np.zeros_like(truth), truth, mask, geometry)
    return {
        "model": {**flat_scores(model, live_metrics()), "n_pixels": model["n_pixels"], "ppa": model["ppa"],
                  "ar_psnr": model.get("ar_psnr"), "ar_r": model.get("ar_r"),
                  "n_regions": model.get("n_regions"),
                  "region_sign_agreement": model.get("region_sign_agreement")},
        "zero": flat_scores(zero, live_metrics()),
    }


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
    try:
        truth = source.nearest(product.obs_time, frame.filename if frame is not None else None)
    except RetryableError as exc:
        obs.verification_total.labels(outcome=VerificationOutcome.FAILED).inc()
        log.warning("verification of product %s: %s", product.id, exc)
        raise
    now = utcnow()
    if truth is None:
        obs.verification_total.labels(outcome=VerificationOutcome.NO_TRUTH).inc()
        doc = {"status": "no_truth", "source": source.name, "checked_at": now.isoformat()}
    else:
        pred, header, geometry = read_product(store.get(store.key_for(product.fits_uri)))
        data = truth.data if truth.in_model_frame else prep_to_frame(
            truth.data, truth.header, header, shape=pred.shape)
        if data.shape != pred.shape:
            raise ValueError(f"truth shape {data.shape} != product shape {pred.shape}")
        doc = {"status": "scored", "source": source.name, "verified_at": now.isoformat(),
               "truth": {**truth.meta, "source": truth.meta.get("source", source.name),
                         "clip_gauss": CLIP_GAUSS},
               **score_against(pred, data, geometry)}
        doc = json_safe(doc)
        export(doc, product.obs_time.timestamp())
    product.verification = doc
    session.add(product)
    return doc


def due(product: Product, now: datetime) -> bool:
    """Whether ``product`` should be (re)tried: never verified, or no truth yet and not too old."""
    v = product.verification
    if not v:
        return True
    if v.get("status") != "no_truth" or now - product.obs_time > GIVE_UP_AFTER:
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
                scored += doc["status"] == "scored"
        except RetryableError:
            continue
        except Exception:  # a bad product must not stop the others
            obs.verification_total.labels(outcome=VerificationOutcome.FAILED).inc()
            log.exception("verification of product %s failed", pid)
    return scored
