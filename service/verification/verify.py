"""Score products against the real magnetogram of their minute, with the baselines beside them.

For one product (:func:`assess`): the truth is the source's usable magnetogram nearest
the product's time (:meth:`~service.sources.magnetograms.base.MagnetogramSource.nearest`),
brought into the model frame (:func:`service.verification.prep.to_model_frame`) and
clipped to +-200 G like the training data (the model cannot say more); persistence is
the newest magnetogram at least :data:`PERSISTENCE_MIN_AGE` older (at most
:data:`PERSISTENCE_MAX_AGE`), rotated differentially to the product's time
(:func:`service.science.rotation.rotate_to`): what a forecaster has without synmag. A
nowcast's persistence is that of its OWN prior instead (:class:`PriorRef`: the product's
``PRIOROBS``/``prior_obs``, found again in the truth source), so the product is judged
against what the same magnetogram says on its own. The model, the zero map and
persistence are scored with :func:`service.science.metrics.score` (regions included) on
the same pixels.

A product with ``SIGMA`` and ``CONFIDENCE`` layers is also scored for calibration
(:func:`service.science.uncertainty.calibration_scores` on pixels with ``|B_true| > 20 G``:
ECE of CONFIDENCE, AUROC, fraction within +-1 SIGMA, SIGMA decile ratio), stored under
``"calibration"`` and exported as ``synmag_calibration_score{metric, kind}``.

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
from dataclasses import dataclass
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
from service.vocabulary import ModelKind, Reference, VerificationOutcome

log = logging.getLogger(__name__)

CLIP_GAUSS = 200.0
# One-day persistence: the newest magnetogram at least a day older than the product, to
# the half-window of a 720 s record (daily data sets' times jitter by a minute), at most two.
PERSISTENCE_MIN_AGE = timedelta(hours=24) - TRUTH_MAX_OFFSET
PERSISTENCE_MAX_AGE = timedelta(hours=48)
# A product without truth yet is tried again after this, for this long (JSOC nrt lags ~1 h).
RETRY_NO_TRUTH = timedelta(minutes=30)
GIVE_UP_AFTER = timedelta(days=3)
# A nowcast's own prior is looked up in the truth source from its recorded time: the
# newest record at most this after it (times are stored to the second or finer) and at
# most TRUTH_MAX_OFFSET before it.
PRIOR_TIME_SLACK = timedelta(seconds=1)
_newest_verified = 0.0
_newest_calibrated: dict[str, float] = {}


@dataclass(frozen=True)
class ProductMap:
    """A product file read back: the field, its header and disk, and its uncertainty layers.

    Attributes
    ----------
    gauss : numpy.ndarray
        Gauss, FITS rows, NaN off the disk.
    header : astropy.io.fits.Header
        The primary header (provenance keys included).
    geometry : DiskGeometry
    sigma, confidence : numpy.ndarray or None
        The ``SIGMA`` and ``CONFIDENCE`` layers, None when the product has none.
    """

    gauss: np.ndarray
    header: Any
    geometry: DiskGeometry
    sigma: np.ndarray | None = None
    confidence: np.ndarray | None = None


@dataclass(frozen=True)
class PriorRef:
    """The prior a nowcast product was made from, as the product records it."""

    obs_time: datetime
    sha256: str | None = None
    origin: str | None = None

    @classmethod
    def of_product(cls, product: Product) -> PriorRef | None:
        """From the product row (``prior_obs``, ``prior_sha256``, ``prior_source``); None: no prior."""
        if product.prior_obs is None:
            return None
        return cls(product.prior_obs.astimezone(UTC), product.prior_sha256, product.prior_source)

    @classmethod
    def of_header(cls, header: Any) -> PriorRef | None:
        """From a product file's ``PRIOROBS``, ``PRIORSHA``, ``PRIORSRC``; None: no prior."""
        text = header.get("PRIOROBS")
        if not text:
            return None
        t = datetime.fromisoformat(str(text))
        return cls(t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC),
                   header.get("PRIORSHA"), header.get("PRIORSRC"))


def read_product_map(data: bytes) -> ProductMap:
    """Product FITS bytes -> :class:`ProductMap` (the layers when the file has them)."""
    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as hdul:
        header = hdul[0].header.copy()
        gauss = np.asarray(hdul[0].data, dtype=np.float32)
        names = {h.name for h in hdul[1:]}
        layers = {name: np.asarray(hdul[name].data, dtype=np.float32) if name in names else None
                  for name in ("SIGMA", "CONFIDENCE")}
    geometry = DiskGeometry((float(header["CRPIX1"]) - 1.0, float(header["CRPIX2"]) - 1.0),
                            float(header["R_SUN"]))
    return ProductMap(gauss, header, geometry, layers["SIGMA"], layers["CONFIDENCE"])


def read_product(data: bytes) -> tuple[np.ndarray, Any, DiskGeometry]:
    """Product FITS bytes -> (Gauss in FITS rows, header, disk geometry)."""
    m = read_product_map(data)
    return m.gauss, m.header, m.geometry


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


def persistence_for(source: MagnetogramSource, obs_time: datetime, geometry: DiskGeometry,
                    prior: PriorRef | None = None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Persistence on the product's grid, and where it came from (or why there is none).

    With ``prior`` (a nowcast), the persistence of that prior: the newest magnetogram of
    ``source`` observed within :data:`TRUTH_MAX_OFFSET` before ``prior.obs_time`` (and
    :data:`PRIOR_TIME_SLACK` after), recorded with ``"of": "prior"`` and whether it is the
    very file (``same_file``, by sha256). When the source has no such magnetogram, the
    one-day persistence stands in and ``prior_missing`` says why. Without ``prior``: the
    one-day persistence (``"of": "one_day"``).
    """
    missing_prior = None
    if prior is not None:
        age = max(obs_time - prior.obs_time, timedelta(0))
        prev = source.newest_before(obs_time, max(age - PRIOR_TIME_SLACK, timedelta(0)), age + TRUTH_MAX_OFFSET)
        if prev is not None:
            rotated, described = _rotated(prev, obs_time, geometry)
            if rotated is not None:
                same = prior.sha256 == prev.sha256 if prior.sha256 else None
                return rotated, {**described, "of": "prior", "same_file": same}
            missing_prior = described["missing"]
        else:
            missing_prior = (f"the product's prior ({prior.origin} {prior.obs_time.isoformat()}) is not in "
                             f"{source.name}")
    prev = source.newest_before(obs_time, PERSISTENCE_MIN_AGE, PERSISTENCE_MAX_AGE)
    extra = {"prior_missing": missing_prior} if missing_prior else {}
    if prev is None:
        return None, {"missing": f"no usable magnetogram from {source.name} observed "
                                 f"{PERSISTENCE_MIN_AGE.total_seconds() / 3600:g}-"
                                 f"{PERSISTENCE_MAX_AGE.total_seconds() / 3600:g} h before the product", **extra}
    rotated, described = _rotated(prev, obs_time, geometry)
    if rotated is None:
        return None, {**described, **extra}
    return rotated, {**described, "of": "one_day", **extra}


def _rotated(prev: Any, obs_time: datetime, geometry: DiskGeometry) -> tuple[np.ndarray | None, dict[str, Any]]:
    """``prev`` in the model frame rotated to ``obs_time`` and its provenance with ``age_h``,
    or ``(None, {"missing": why})`` when it cannot be used."""
    from astropy.time import Time

    try:
        prev_gauss, prev_geometry = to_model_frame(prev)
    except MagnetogramRejected as exc:
        return None, {"missing": f"{prev.origin} {prev.obs_time.isoformat()}: {exc}"}
    rotated = rotate(prev_gauss, Time(prev.obs_time.replace(tzinfo=None), scale="utc"),
                     Time(obs_time.astimezone(UTC).replace(tzinfo=None), scale="utc"), geometry, prev_geometry)
    age_h = (obs_time - prev.obs_time).total_seconds() / 3600.0
    return rotated, {**prev.describe(), "age_h": age_h}


def calibration_for(pred: np.ndarray, sigma: np.ndarray | None, confidence: np.ndarray | None,
                    truth: np.ndarray) -> dict[str, Any] | None:
    """The calibration figures of a product's layers against ``truth`` (clipped like the data),
    on pixels with ``|B_true| > STRONG_G``; None for a product without layers."""
    from service.science.uncertainty import STRONG_G, calibration_scores

    if sigma is None or confidence is None:
        return None
    scores = calibration_scores(pred, sigma, confidence, np.clip(truth, -CLIP_GAUSS, CLIP_GAUSS))
    return {**scores, "strong_g": STRONG_G}


def rotate(prev_gauss: np.ndarray, prev_time: Any, target_time: Any, geometry: Any, prev_geometry: Any) -> np.ndarray:
    """``rotation.rotate_to`` of a model-frame map (row 0 south), clipped as the data are."""
    from service.science.rotation import rotate_to

    return rotate_to(prev_gauss, prev_time, target_time, geometry, prev_geometry=prev_geometry,
                     clip_g=CLIP_GAUSS)


def assess(pred: np.ndarray, geometry: DiskGeometry, obs_time: datetime, input_file: str | None,
           source: MagnetogramSource, *, prior: PriorRef | None = None, sigma: np.ndarray | None = None,
           confidence: np.ndarray | None = None) -> dict[str, Any]:
    """The verification document of one product map (not stored; JSON-safe).

    ``{"status": "scored", "source", "truth": {...}, "persistence_source": {...},
    "model": {...}, "zero": {...}, "persistence": {...} | None, "calibration": {...} | None}``
    or ``{"status": "no_truth", "source", "reason"}``. ``prior``: the nowcast's prior, whose
    persistence is scored (:func:`persistence_for`); ``sigma``, ``confidence``: the product's
    layers (:func:`calibration_for`). Raises ``RetryableError`` when the source is
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
    persistence, persistence_source = persistence_for(source, obs_time, geometry, prior)
    doc = {
        "status": VerificationOutcome.SCORED, "source": source.name,
        "truth": {**truth.describe(), "offset_s": (truth.obs_time - obs_time).total_seconds(),
                  "clip_gauss": CLIP_GAUSS},
        "persistence_source": persistence_source,
        **score_against(pred, truth_gauss, geometry, persistence),
        "calibration": calibration_for(pred, sigma, confidence, truth_gauss),
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


def export_calibration(kind: str | None, calibration: dict[str, Any] | None, obs_unix: float) -> None:
    """Set ``synmag_calibration_score{kind}`` from the newest calibrated product of that kind."""
    if calibration is None:
        return
    kind = ModelKind(kind) if kind else ModelKind.HALPHA
    if obs_unix < _newest_calibrated.get(kind, 0.0):
        return
    _newest_calibrated[kind] = obs_unix
    obs.set_calibration(kind, calibration)


def verify_product(session: Session, store: ObjectStore, product: Product,
                   source: MagnetogramSource) -> dict[str, Any]:
    """Verify one product; store and return its ``verification`` document.

    A nowcast's persistence is its own prior's (the row's ``prior_obs``); the
    calibration of its layers is scored when the file has them.
    """
    frame = product.input_frame
    m = read_product_map(store.get(store.key_for(product.fits_uri)))
    try:
        doc = assess(m.gauss, m.geometry, product.obs_time, frame.filename if frame is not None else None, source,
                     prior=PriorRef.of_product(product), sigma=m.sigma, confidence=m.confidence)
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
        export_calibration(product.model_kind, doc.get("calibration"), product.obs_time.timestamp())
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
