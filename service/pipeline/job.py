"""The work of one observation minute: ``process_minute(minute, ctx)``.

Idempotent and keyed by (observation minute, model version): run it twice, or
after a crash at any point, and the result is one product. The steps:

1. if a product row exists for the key and its objects exist -> nothing to do
   (a missing object is re-made and re-put: "row present, object missing");
2. list the minute's frames (one per site), download each, decode with
   ``read_gong`` and score with the quality gate;
3. choose one (``select.choose``); the others keep their rejection reasons;
4. archive the chosen raw frame (conditional put: same bytes -> same object);
5. if product objects already exist for the chosen frame (a crash after the
   puts and before the row) -> verify them (they open, and their provenance
   names this input's sha256 and this model) and adopt them; otherwise run the
   model and put FITS + PNG with a conditional put, never overwriting;
6. insert input frames, rejections, the product row, the minute's state and the
   run record in one transaction.

A product counts only when its objects and its row both exist; step 1 and 5
repair the two halves a crash can leave.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service import observability as obs
from service.db import InputFrame, MinuteState, Product, Rejection, Run, session_scope
from service.errors import FatalError, FrameRejected, RetryableError, SkipError
from service.pipeline.runtime import LoadedModel, ModelRuntime
from service.pipeline.select import Candidate, choose
from service.pipeline.source import Download, GongArchive, RemoteFrame
from service.settings import Settings
from service.storage import (
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    product_key,
    raw_key,
    sha256_hex,
)

log = logging.getLogger(__name__)
outcome_log = logging.getLogger("synmag.minute")

# A minute whose downloads keep failing is retried this many times, with backoff.
MAX_ATTEMPTS = 5
RETRY_BACKOFF = timedelta(seconds=60)
# Our outcome -> runs.outcome in the database (its CHECK constraint) and minute_states.state.
_RUN_OUTCOME = {
    "product": "product", "exists": "product", "repaired": "product",
    "no_frames": "skipped", "no_model": "skipped",
    "rejected": "rejected", "retry": "failed", "failed": "failed",
}
_MINUTE_STATE = {
    "product": "done", "exists": "done", "repaired": "done",
    "no_frames": "skipped", "no_model": "skipped",
    "rejected": "rejected", "retry": "pending", "failed": "failed",
}
NO_MODEL = "no_model"


@dataclass
class PipelineContext:
    """Everything a job needs, built once by ``synmag serve`` (or a test)."""

    settings: Settings
    archive: GongArchive
    store: ObjectStore
    sessions: sessionmaker[Session]
    runtime: ModelRuntime
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class MinuteOutcome:
    """How one minute ended (one structured log line)."""

    minute: datetime
    outcome: str
    site: str | None = None
    filename: str | None = None
    obs_time: datetime | None = None
    product_id: int | None = None
    model_version: str | None = None
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)

    def log_line(self) -> str:
        return json.dumps(
            {
                "minute": self.minute.strftime("%Y-%m-%dT%H:%MZ"),
                "outcome": self.outcome,
                "site": self.site,
                "file": self.filename,
                "product_id": self.product_id,
                "model": self.model_version,
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
                "rejected": self.rejected,
                "detail": self.detail or None,
            },
            separators=(",", ":"),
        )


def gate_thresholds(settings: Settings) -> Any:
    """The quality gate's thresholds from settings (``service.science.quality``)."""
    from service.science import quality

    return quality.Thresholds.from_settings(settings)


def process_minute(
    minute: datetime, ctx: PipelineContext, frames: list[RemoteFrame] | None = None,
) -> MinuteOutcome:
    """Make (or confirm) the product of one observation minute.

    Parameters
    ----------
    minute : datetime
        Observation minute (UTC, seconds zero).
    ctx : PipelineContext
    frames : list of RemoteFrame, optional
        The minute's listed frames when the caller has listed already (the
        scheduler lists once per tick); listed here otherwise.
    """
    minute = minute.astimezone(UTC).replace(second=0, microsecond=0)
    started = ctx.now()
    model = ctx.runtime.current
    if model is None:
        result = MinuteOutcome(minute, NO_MODEL, detail="no model available")
        _finish(ctx, result, started)
        return result
    try:
        result = _process(minute, ctx, model, frames)
    except (RetryableError, SQLAlchemyError, OSError) as exc:
        if isinstance(exc, SQLAlchemyError):
            obs.database_errors_total.inc()
        result = MinuteOutcome(minute, "retry", model_version=model.version, detail=f"{type(exc).__name__}: {exc}")
    except (FatalError, ObjectExists) as exc:
        result = MinuteOutcome(minute, "failed", model_version=model.version, detail=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug or an unforeseen input: this minute fails, the service goes on
        log.exception("minute %s failed", minute)
        result = MinuteOutcome(minute, "failed", model_version=model.version, detail=f"{type(exc).__name__}: {exc}")
    try:
        _finish(ctx, result, started)
    except SQLAlchemyError as exc:  # the database is down: the minute stays pending
        obs.database_errors_total.inc()
        log.error("could not record minute %s: %s", minute, exc)
    return result


def _process(minute: datetime, ctx: PipelineContext, model: LoadedModel, frames: list[RemoteFrame] | None) -> MinuteOutcome:
    existing = existing_product(ctx, minute, model.version)
    if existing is not None:
        repaired = _repair_objects(ctx, existing, model)
        return MinuteOutcome(
            minute, "repaired" if repaired else "exists", site=existing.site, product_id=existing.id,
            model_version=model.version, detail="re-put missing objects" if repaired else "",
        )
    if frames is None:
        deadline = time.monotonic() + _minute_budget(ctx.settings)
        listed = ctx.archive.list_recent(minute + timedelta(seconds=59), minute, deadline)
        frames = [f for f in listed if f.minute == minute]
    if not frames:
        return MinuteOutcome(minute, "no_frames", model_version=model.version, detail="nothing listed")

    candidates = _gather(ctx, frames)
    return _process_rest(minute, ctx, model, candidates)


def _process_rest(minute: datetime, ctx: PipelineContext, model: LoadedModel, candidates: list[Candidate]) -> MinuteOutcome:
    """Choose among the candidates still usable, make and commit the product."""
    for c in candidates:  # a fresh choice: earlier losers compete again
        c.reasons = [r for r in c.reasons if r != "not_selected"]
    selection = choose(candidates)
    rejected = {c.remote.name: list(c.reasons) for c in selection.rejected}
    chosen = selection.chosen
    if chosen is None:
        retryable = any("download_failed" in c.reasons for c in candidates)
        _record_frames(ctx, candidates, product=None)
        return MinuteOutcome(
            minute, "retry" if retryable else "rejected", model_version=model.version,
            detail="no usable frame", rejected=rejected,
            timings=_sum_timings(candidates),
        )

    timings = dict(chosen.timings)
    download = chosen.download
    assert download is not None
    t0 = time.perf_counter()
    raw_uri = _put(ctx.store, raw_key(chosen.remote.obs_time, chosen.remote.name), download.data,
                   "application/fits")
    timings["write"] = time.perf_counter() - t0
    try:
        product, how = store_product(ctx, minute, chosen, model, timings)
    except FrameRejected as exc:  # refused by the forward transform or the model's output
        chosen.reject(exc.reason, exc.detail)
        return _process_rest(minute, ctx, model, candidates)
    for stage_name, seconds in timings.items():
        obs.observe_stage(stage_name, seconds)

    product_id = _record_frames(ctx, candidates, product=product, chosen=chosen, raw_uri=raw_uri)
    if product_id is None:  # another writer committed this key first
        existing = existing_product(ctx, minute, model.version)
        return MinuteOutcome(minute, "exists", site=chosen.remote.site, filename=chosen.remote.name,
                             product_id=existing.id if existing else None, model_version=model.version)
    obs.product_committed(chosen.remote.obs_time.timestamp())
    return MinuteOutcome(
        minute, how, site=chosen.remote.site, filename=chosen.remote.name, product_id=product_id,
        obs_time=chosen.remote.obs_time,
        model_version=model.version, timings=timings, rejected=rejected,
    )


def _minute_budget(settings: Settings) -> float:
    """Seconds a minute may spend on the network before it is left for a later tick."""
    return max(60.0, 4 * settings.http_timeout_s)


def store_product(
    ctx: PipelineContext, minute: datetime, candidate: Candidate, model: LoadedModel, timings: dict[str, float]
) -> tuple[Product, str]:
    """The objects of ``candidate``'s product by ``model`` in the store, and its row (not yet added).

    The FITS and PNG are made and put (conditional puts, never overwriting), or, when an
    interrupted run left them, verified and adopted. Returns the row, without its
    ``input_frame_id``, and ``"product"`` or ``"repaired"``. ``timings`` gains the
    preprocess and inference stages, and the time spent writing is added to its
    ``"write"``. Raises :class:`~service.errors.FrameRejected` like :func:`make_product_bytes`.
    """
    remote, download = candidate.remote, candidate.download
    assert download is not None
    t0 = time.perf_counter()
    fits_key = product_key(remote.obs_time, remote.site_letter, model.version, "fits")
    png_key = product_key(remote.obs_time, remote.site_letter, model.version, "png")
    adopted = _adopt_objects(ctx, fits_key, png_key, download.sha256, model)
    timings["write"] = timings.get("write", 0.0) + time.perf_counter() - t0
    if adopted is None:
        fits_bytes, png_bytes, stage, sign = make_product_bytes(candidate, model)
        timings["write"] += stage.pop("write")
        timings.update(stage)
        t0 = time.perf_counter()
        fits_uri = _put(ctx.store, fits_key, fits_bytes, "application/fits")
        png_uri = _put(ctx.store, png_key, png_bytes, "image/png")
        timings["write"] += time.perf_counter() - t0
        fits_sha, png_sha = sha256_hex(fits_bytes), sha256_hex(png_bytes)
        how = "product"
    else:
        fits_uri, png_uri, fits_sha, png_sha, sign = adopted
        how = "repaired"
    product = Product(
        obs_time=remote.obs_time,
        obs_minute=minute,
        site=remote.site,
        model_version=model.version,
        preprocess_version=_preprocess_version(),
        polarity_sign=sign,
        fits_uri=fits_uri,
        png_uri=png_uri,
        fits_sha256=fits_sha,
        png_sha256=png_sha,
        quality=_quality(candidate),
        timings={k: round(v, 4) for k, v in timings.items()},
    )
    return product, how


# -- candidates: download, decode, gate ------------------------------------------
def _gather(ctx: PipelineContext, frames: list[RemoteFrame]) -> list[Candidate]:
    thresholds = gate_thresholds(ctx.settings)
    deadline = time.monotonic() + _minute_budget(ctx.settings)
    candidates = []
    for remote in frames:
        candidate = Candidate(remote=remote)
        candidates.append(candidate)
        t0 = time.perf_counter()
        try:
            candidate.download = ctx.archive.download(remote, deadline)
        except SkipError as exc:
            candidate.reject("download_failed", f"not found: {exc}")
            candidate.reasons.append("not_found")
            continue
        except (RetryableError, FatalError) as exc:
            candidate.reject("download_failed", str(exc))
            continue
        finally:
            candidate.timings["download"] = time.perf_counter() - t0
        decode_and_gate(candidate, thresholds)
    return candidates


def decode_and_gate(candidate: Candidate, thresholds: Any) -> None:
    """Decode a downloaded candidate's FITS and score it with the quality gate.

    A frame that cannot be read, names another site inside than its file name does, or
    fails the gate gets its reasons (``candidate.reject``); nothing is raised.
    """
    from service.science.gong import read_gong
    from service.science.quality import gate

    assert candidate.download is not None
    remote = candidate.remote
    t0 = time.perf_counter()
    try:
        candidate.frame = read_gong(candidate.download.data, filename=remote.name)
    except FrameRejected as exc:
        candidate.reject(exc.reason, exc.detail)
        return
    finally:
        candidate.timings["decode"] = time.perf_counter() - t0
    if candidate.frame.site_letter != remote.site_letter:
        candidate.reject("absurd_header", f"site {candidate.frame.site} does not match {remote.name}")
        return
    t0 = time.perf_counter()
    candidate.verdict = gate(candidate.frame, thresholds)
    candidate.timings["gate"] = time.perf_counter() - t0
    if not candidate.verdict.accepted:
        for reason in candidate.verdict.reasons or ["other"]:
            candidate.reject(reason, "quality gate")


def _sum_timings(candidates: list[Candidate]) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in candidates:
        for k, v in c.timings.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _quality(candidate: Candidate) -> dict[str, Any]:
    verdict = candidate.verdict
    keys = getattr(candidate.frame, "quality_keys", {}) or {}
    return {
        "score": float(verdict.score) if verdict is not None else None,
        "reasons": list(getattr(verdict, "reasons", []) or []),
        "header": {k: v for k, v in keys.items() if v is None or isinstance(v, (int, float, str))},
    }


# -- the model -------------------------------------------------------------------
def _preprocess_version() -> str:
    from service.science.preprocess import PREPROCESS_VERSION

    return PREPROCESS_VERSION


def make_product_bytes(
    candidate: Candidate, model: LoadedModel
) -> tuple[bytes, bytes, dict[str, float], int]:
    """Preprocess, infer, postprocess, render FITS + PNG; returns the stage timings and the
    polarity sign applied (``service.science.cycles``) too.

    The same code as ``synmag process`` (``service.inference.process.product_from_frame``,
    which ``run_frame`` ends in), so the feed's products and the command line's are made
    identically; the candidate's frame was already decoded and gated here, once.

    Raises :class:`~service.errors.FrameRejected` for a frame the forward transform
    refuses (``nan_pixels``, ``flat_disk``) or an output that is not finite on the disk.
    """
    import numpy as np

    from service.inference.process import product_from_frame

    assert candidate.download is not None and candidate.frame is not None
    verdict = candidate.verdict
    result = product_from_frame(
        candidate.frame, model.generator, input_file=candidate.remote.name,
        input_sha256=candidate.download.sha256,
        quality_score=float(verdict.score) if verdict is not None else float("nan"),
    )
    if not np.isfinite(result.gauss[result.geometry.mask()]).all():
        raise FrameRejected("nan_output", "the model returned non-finite values on the disk")
    t = result.timings
    timings = {
        "preprocess": t.get("preprocess", 0.0),
        "inference": t.get("predict", 0.0),
        "write": t.get("postprocess", 0.0) + t.get("encode", 0.0),
    }
    return result.fits_bytes, result.png_bytes, timings, int(result.provenance["polarity_sign"])


# -- the store -------------------------------------------------------------------
def _put(store: ObjectStore, key: str, data: bytes, content_type: str) -> str:
    try:
        return store.put(key, data, content_type, if_none_match=True)
    except ObjectExists:
        raise
    except Exception:
        obs.store_errors_total.inc()
        raise


def _adopt_objects(
    ctx: PipelineContext, fits_key: str, png_key: str, input_sha256: str, model: LoadedModel
) -> tuple[str, str, str, str, int | None] | None:
    """Objects left by a run that crashed before its row: verified, they are the product.

    Returns (fits_uri, png_uri, fits_sha256, png_sha256, polarity sign from the FITS
    header) or ``None`` when there is nothing to adopt. Objects that exist but do not belong to this input and
    model raise :class:`ObjectExists` (they are never overwritten).
    """
    store = ctx.store
    if not store.exists(fits_key):
        if store.exists(png_key):  # a PNG alone: its FITS put never happened; make both
            raise ObjectExists(png_key, store.uri_for(png_key))
        return None
    fits_bytes = store.get(fits_key)
    sign = _verify_fits(fits_bytes, fits_key, input_sha256, model)
    if not store.exists(png_key):
        from service.science.product import quicklook_png_bytes

        png_bytes = quicklook_png_bytes(_fits_data(fits_bytes))
        store.put(png_key, png_bytes, "image/png")
    png_bytes = store.get(png_key)
    log.warning("adopting objects of an earlier interrupted run: %s", fits_key)
    return store.uri_for(fits_key), store.uri_for(png_key), sha256_hex(fits_bytes), sha256_hex(png_bytes), sign


def _verify_fits(data: bytes, key: str, input_sha256: str, model: LoadedModel) -> int | None:
    """The FITS belongs to this input and model (else ObjectExists); returns its POLSIGN."""
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(data), checksum=True) as hdul:
            header = hdul[0].header
            shape = hdul[0].data.shape
    except Exception as exc:
        raise ObjectExists(key, key) from exc
    if header.get("INSHA256") != input_sha256 or header.get("MODELVER") != model.version or shape != (1024, 1024):
        raise ObjectExists(key, key)
    return int(header["POLSIGN"]) if "POLSIGN" in header else None


def _fits_data(data: bytes) -> Any:
    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as hdul:
        return hdul[0].data.copy()


def existing_product(ctx: PipelineContext, minute: datetime, version: str) -> Product | None:
    with session_scope(ctx.sessions) as session:
        return session.scalars(
            select(Product).where(Product.obs_minute == minute, Product.model_version == version)
        ).first()


def _repair_objects(ctx: PipelineContext, product: Product, model: LoadedModel) -> bool:
    """Re-make objects of a committed product that went missing from the store."""
    store = ctx.store
    missing = [uri for uri in (product.fits_uri, product.png_uri) if uri and not store.exists(store.key_for(uri))]
    if not missing:
        return False
    with session_scope(ctx.sessions) as session:
        frame = session.get(InputFrame, product.input_frame_id)
        assert frame is not None
        filename, sha, raw_uri = frame.filename, frame.sha256, frame.raw_uri
    from service.science.gong import read_gong
    from service.science.product import quicklook_png_bytes

    fits_key = store.key_for(product.fits_uri)
    if store.exists(fits_key):  # only the PNG is gone: draw it from the FITS
        png = quicklook_png_bytes(_fits_data(store.get(fits_key)))
        store.put(store.key_for(product.png_uri), png, "image/png")  # type: ignore[arg-type]
        new = {"png_sha256": sha256_hex(png)}
    else:
        candidate = archived_candidate(ctx, filename, sha, raw_uri)  # FatalError when not intact
        candidate.frame = read_gong(candidate.download.data, filename=filename)  # type: ignore[union-attr]
        fits_bytes, png_bytes, _, _ = make_product_bytes(candidate, model)
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


def archived_candidate(ctx: PipelineContext, filename: str, sha256: str, raw_uri: str | None) -> Candidate:
    """A candidate made of the raw frame archived at ``raw_uri`` (not yet decoded).

    Raises :class:`~service.errors.FatalError` when the object is missing or its bytes
    are not the ones recorded at download (``sha256``): a product is never made from them.
    """
    try:
        raw = ctx.store.get(ctx.store.key_for(raw_uri)) if raw_uri else None
    except ObjectNotFound:
        raw = None
    if raw is None or sha256_hex(raw) != sha256:
        why = "missing" if raw is None else "sha256 differs from the one recorded at download"
        raise FatalError(f"raw input {filename} is not archived intact ({why})")
    remote = RemoteFrame.from_name(filename, ctx.settings.gong_base_url)
    assert remote is not None  # the name was parsed from a listing when it was fetched
    return Candidate(remote=remote, download=Download(remote, raw, sha256, 0.0))


# -- the database ------------------------------------------------------------------
def _record_frames(
    ctx: PipelineContext,
    candidates: list[Candidate],
    product: Product | None,
    chosen: Candidate | None = None,
    raw_uri: str | None = None,
) -> int | None:
    """One transaction: input frames, rejections, and the product row.

    Returns the product id, or ``None`` when the product key was already taken.
    """
    try:
        with session_scope(ctx.sessions) as session:
            for candidate in candidates:
                frame_row = _upsert_input_frame(session, candidate, raw_uri if candidate is chosen else None)
                if candidate is not chosen:
                    _add_rejections(session, candidate)
                if candidate is chosen and product is not None:
                    session.flush()
                    product.input_frame_id = frame_row.id  # type: ignore[union-attr]
                    session.add(product)
            session.flush()
            return product.id if product is not None else None
    except IntegrityError:
        obs.database_errors_total.inc()
        log.info("product key taken by another writer: %s", product.obs_minute if product else None)
        return None


def _upsert_input_frame(session: Session, candidate: Candidate, raw_uri: str | None) -> InputFrame | None:
    if candidate.download is None:
        return None
    remote = candidate.remote
    row = session.scalars(select(InputFrame).where(InputFrame.filename == remote.name)).first()
    if row is None:
        row = InputFrame(
            filename=remote.name,
            url=remote.url,
            site=remote.site,
            site_letter=remote.site_letter,
            obs_time=remote.obs_time,
            obs_minute=remote.minute,
            sha256=candidate.download.sha256,
            size_bytes=len(candidate.download.data),
        )
        session.add(row)
    row.accepted = candidate.usable or (candidate.verdict is not None and bool(candidate.verdict.accepted))
    if candidate.frame is not None:
        row.header_generation = getattr(candidate.frame, "generation", None)
    if candidate.verdict is not None:
        row.quality = _quality(candidate)
    if raw_uri is not None:
        row.raw_uri = raw_uri
    return row


_STAGE_OF_REASON = {
    "download_failed": "download", "not_found": "download", "size_mismatch": "download",
    "corrupt_fits": "decode", "truncated": "decode", "wrong_shape": "decode",
    "missing_keys": "decode", "absurd_header": "decode",
    "not_selected": "select", "nan_output": "inference",
}


def _add_rejections(session: Session, candidate: Candidate) -> None:
    remote = candidate.remote
    known = set(session.scalars(select(Rejection.reason).where(Rejection.filename == remote.name)))
    for reason in candidate.reasons:
        if reason in known:
            continue
        known.add(reason)
        session.add(Rejection(
            filename=remote.name, url=remote.url, site=remote.site, obs_time=remote.obs_time,
            obs_minute=remote.minute, stage=_STAGE_OF_REASON.get(reason, "gate"), reason=reason,
            detail=candidate.detail or None,
        ))
        obs.reject(reason)


def _finish(ctx: PipelineContext, result: MinuteOutcome, started: datetime) -> None:
    """Record the run and the minute's state; count and log the outcome."""
    now = ctx.now()
    with session_scope(ctx.sessions) as session:
        state = session.get(MinuteState, result.minute)
        if state is None:
            state = MinuteState(obs_minute=result.minute, state="pending", attempts=0)
            session.add(state)
        state.attempts = (state.attempts or 0) + 1
        new_state = _MINUTE_STATE[result.outcome]
        if result.outcome == "retry":
            if state.attempts >= MAX_ATTEMPTS:
                new_state = "failed"
            else:
                state.next_attempt_at = now + RETRY_BACKOFF * 2 ** (state.attempts - 1)
        state.state = new_state
        state.detail = NO_MODEL if result.outcome == NO_MODEL else (result.detail or None)
        session.add(Run(
            obs_minute=result.minute, started_at=started, finished_at=now,
            outcome=_RUN_OUTCOME[result.outcome], detail=result.log_line(), attempt=state.attempts,
        ))
    obs.runs_total.labels(outcome=result.outcome).inc()
    outcome_log.info(result.log_line())
