"""A product's objects in the store and its row: made, adopted after a crash, or repaired.

``store_product`` is shared by the feed and the backfill. Objects are written with
conditional puts and never overwritten: a run that died after its puts and before its
row left objects that are verified (they open, and their provenance names this input's
sha256 and this model) and adopted; a committed product whose objects went missing gets
them made again from the archived input (:func:`repair_objects`).
"""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from service import observability as obs
from service.db import InputFrame, Product, session_scope
from service.errors import FatalError, FrameRejected
from service.pipeline.candidates import Candidate, archived_candidate
from service.pipeline.context import PipelineContext
from service.pipeline.runtime import LoadedModel
from service.storage import ObjectExists, ObjectStore, product_key, sha256_hex
from service.vocabulary import Outcome, Reason, Stage

log = logging.getLogger(__name__)

__all__ = ["existing_product", "make_product_bytes", "put", "repair_objects", "store_product"]


def existing_product(ctx: PipelineContext, minute: datetime, version: str) -> Product | None:
    """The product row of (minute, model version), if one is committed."""
    with session_scope(ctx.sessions) as session:
        return session.scalars(
            select(Product).where(Product.obs_minute == minute, Product.model_version == version)
        ).first()


def make_product_bytes(
    candidate: Candidate, model: LoadedModel, prior: Any = None, prior_note: str | None = None,
) -> tuple[bytes, bytes, dict[str, float], dict[str, Any]]:
    """Preprocess, infer, postprocess, render FITS + PNG; returns the stage timings and the
    product's provenance (polarity sign, model kind, prior) too.

    The same code as ``synmag process`` (``service.inference.process.product_from_frame``),
    so the feed's products and the command line's are made identically; the candidate's
    frame was already decoded and gated, once.

    Raises :class:`~service.errors.FrameRejected` for a frame the forward transform
    refuses (``nan_pixels``, ``flat_disk``) or an output that is not finite on the disk.
    """
    import numpy as np

    from service.inference.process import product_from_frame

    assert candidate.download is not None and candidate.frame is not None
    verdict = candidate.verdict
    result = product_from_frame(
        candidate.frame, model.generator, prior=prior, prior_note=prior_note, input_file=candidate.remote.name,
        input_sha256=candidate.download.sha256,
        quality_score=float(verdict.score) if verdict is not None else float("nan"),
    )
    if not np.isfinite(result.gauss[result.geometry.mask()]).all():
        raise FrameRejected(Reason.NAN_OUTPUT, "the model returned non-finite values on the disk")
    t = result.timings
    timings = {
        Stage.PREPROCESS: t.get(Stage.PREPROCESS, 0.0),
        Stage.INFERENCE: t.get(Stage.INFERENCE, 0.0),
        Stage.WRITE: t.get(Stage.POSTPROCESS, 0.0) + t.get(Stage.ENCODE, 0.0),
    }
    return result.fits_bytes, result.png_bytes, timings, result.provenance


def store_product(
    ctx: PipelineContext, minute: datetime, candidate: Candidate, model: LoadedModel, timings: dict[str, float],
    prior: Any = None, prior_note: str | None = None,
) -> tuple[Product, Outcome]:
    """The objects of ``candidate``'s product by ``model`` (with ``prior`` for a nowcast) in the
    store, and its row (not yet added).

    The FITS and PNG are made and put (conditional puts, never overwriting), or, when an
    interrupted run left them, verified and adopted. Returns the row, without its
    ``input_frame_id``, and :attr:`Outcome.PRODUCT` or :attr:`Outcome.REPAIRED`. The
    preprocess, inference and write times are added to ``timings`` (the feed has put the prior's
    lookup under preprocess already). Raises :class:`~service.errors.FrameRejected` like :func:`make_product_bytes`.
    """
    remote, download = candidate.remote, candidate.download
    assert download is not None
    t0 = time.perf_counter()
    fits_key = product_key(remote.obs_time, remote.source, remote.site, model.version, "fits")
    png_key = product_key(remote.obs_time, remote.source, remote.site, model.version, "png")
    adopted = _adopt_objects(ctx.store, fits_key, png_key, download.sha256, model)
    timings[Stage.WRITE] = timings.get(Stage.WRITE, 0.0) + time.perf_counter() - t0
    if adopted is None:
        fits_bytes, png_bytes, stage, provenance = make_product_bytes(candidate, model, prior, prior_note)
        for name, seconds in stage.items():
            timings[name] = timings.get(name, 0.0) + seconds
        t0 = time.perf_counter()
        fits_uri = put(ctx.store, fits_key, fits_bytes, "application/fits")
        png_uri = put(ctx.store, png_key, png_bytes, "image/png")
        timings[Stage.WRITE] += time.perf_counter() - t0
        fits_sha, png_sha = sha256_hex(fits_bytes), sha256_hex(png_bytes)
        how = Outcome.PRODUCT
    else:
        fits_uri, png_uri, fits_sha, png_sha, provenance = adopted
        how = Outcome.REPAIRED
    product = Product(
        obs_time=remote.obs_time,
        obs_minute=minute,
        source=remote.source,
        site=remote.site,
        model_version=model.version,
        preprocess_version=_preprocess_version(),
        **product_columns(provenance),
        fits_uri=fits_uri,
        png_uri=png_uri,
        fits_sha256=fits_sha,
        png_sha256=png_sha,
        quality=candidate.quality_record(),
        timings={str(k): round(v, 4) for k, v in timings.items()},
    )
    return product, how


def product_columns(provenance: dict[str, Any]) -> dict[str, Any]:
    """The product row's columns that repeat the FITS provenance (sign, kind, prior)."""
    obs = provenance.get("prior_obs")
    age = provenance.get("prior_age_h")
    sign = provenance.get("polarity_sign")
    return {
        "polarity_sign": int(sign) if sign is not None else None,
        "model_kind": provenance.get("model_kind"),
        "prior_obs": datetime.fromisoformat(str(obs)).astimezone(UTC) if obs else None,
        "prior_age_h": float(age) if age is not None else None,
        "prior_source": provenance.get("prior_source"),
        "prior_sha256": provenance.get("prior_sha256"),
        "prior_note": provenance.get("prior_note"),
    }


def _preprocess_version() -> str:
    from service.science.preprocess import PREPROCESS_VERSION

    return PREPROCESS_VERSION


def put(store: ObjectStore, key: str, data: bytes, content_type: str) -> str:
    """A conditional put, counting store failures (an existing other object is not one)."""
    try:
        return store.put(key, data, content_type, if_none_match=True)
    except ObjectExists:
        raise
    except Exception:
        obs.store_errors_total.inc()
        raise


def _adopt_objects(
    store: ObjectStore, fits_key: str, png_key: str, input_sha256: str, model: LoadedModel
) -> tuple[str, str, str, str, dict[str, Any]] | None:
    """Objects left by a run that crashed before its row: verified, they are the product.

    Returns (fits_uri, png_uri, fits_sha256, png_sha256, provenance from the FITS
    header) or ``None`` when there is nothing to adopt. Objects that exist but do not belong to this input and
    model raise :class:`ObjectExists` (they are never overwritten).
    """
    if not store.exists(fits_key):
        if store.exists(png_key):  # a PNG alone: its FITS put never happened; make both
            raise ObjectExists(png_key, store.uri_for(png_key))
        return None
    fits_bytes = store.get(fits_key)
    provenance = _verify_fits(fits_bytes, fits_key, input_sha256, model)
    if not store.exists(png_key):
        from service.science.product import quicklook_png_bytes

        png_bytes = quicklook_png_bytes(_fits_data(fits_bytes))
        store.put(png_key, png_bytes, "image/png")
    png_bytes = store.get(png_key)
    log.warning("adopting objects of an earlier interrupted run: %s", fits_key)
    return store.uri_for(fits_key), store.uri_for(png_key), sha256_hex(fits_bytes), sha256_hex(png_bytes), provenance


def _verify_fits(data: bytes, key: str, input_sha256: str, model: LoadedModel) -> dict[str, Any]:
    """The FITS belongs to this input and model (else ObjectExists); returns its provenance keys."""
    from astropy.io import fits

    from service.science.product import PROVENANCE_KEYS

    try:
        with fits.open(io.BytesIO(data), checksum=True) as hdul:
            header = hdul[0].header
            shape = hdul[0].data.shape
    except Exception as exc:
        raise ObjectExists(key, key) from exc
    if header.get("INSHA256") != input_sha256 or header.get("MODELVER") != model.version or shape != (1024, 1024):
        raise ObjectExists(key, key)
    return {name: header.get(key) for name, (key, _) in PROVENANCE_KEYS.items()}


def _fits_data(data: bytes) -> Any:
    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as hdul:
        return hdul[0].data.copy()


def repair_objects(ctx: PipelineContext, product: Product, model: LoadedModel) -> bool:
    """Re-make objects of a committed product that went missing from the store; True if any was."""
    store = ctx.store
    missing = [uri for uri in (product.fits_uri, product.png_uri) if uri and not store.exists(store.key_for(uri))]
    if not missing:
        return False
    with session_scope(ctx.sessions) as session:
        frame = session.get(InputFrame, product.input_frame_id)
        assert frame is not None
        filename, sha, raw_uri, source_name = frame.filename, frame.sha256, frame.raw_uri, frame.source
    from service.science.product import quicklook_png_bytes

    fits_key = store.key_for(product.fits_uri)
    if store.exists(fits_key):  # only the PNG is gone: draw it from the FITS
        png = quicklook_png_bytes(_fits_data(store.get(fits_key)))
        store.put(store.key_for(product.png_uri), png, "image/png")  # type: ignore[arg-type]
        new = {"png_sha256": sha256_hex(png)}
    else:
        source = ctx.sources[source_name]
        candidate = archived_candidate(store, source, filename, sha, raw_uri)  # FatalError when not intact
        candidate.frame = source.read(candidate.download.data, filename)  # type: ignore[union-attr]
        prior, why = (ctx.priors.find(frame_obs_time(candidate)) if model.generator.polarity_from_prior
                      else (None, product.prior_note))
        if model.generator.polarity_from_prior and prior is None:
            raise FatalError(f"product {product.id}: its objects are gone and its prior cannot be found again ({why})")
        fits_bytes, png_bytes, _, _ = make_product_bytes(candidate, model, prior, why)
        store.put(fits_key, fits_bytes, "application/fits")
        if product.png_uri and not store.exists(store.key_for(product.png_uri)):
            store.put(store.key_for(product.png_uri), png_bytes, "image/png")
        new = {"fits_sha256": sha256_hex(fits_bytes), "png_sha256": sha256_hex(png_bytes)}
    with session_scope(ctx.sessions) as session:
        row = session.get(Product, product.id)
        assert row is not None
        for k, v in new.items():
            setattr(row, k, v)
    log.warning("product %s: re-put missing objects %s", product.id, missing)
    return True


def frame_obs_time(candidate: Candidate) -> datetime:
    """The candidate's frame observation time, aware UTC."""
    assert candidate.frame is not None
    return candidate.frame.obs_time.utc.to_datetime(timezone=UTC)
