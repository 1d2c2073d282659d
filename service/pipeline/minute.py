"""The work of one observation minute: ``process_minute(minute, ctx)``.

Idempotent and keyed by (observation minute, model version): run it twice, or
after a crash at any point, and the result is one product. The steps:

1. if a product row exists for the key and its objects exist -> nothing to do
   (a missing object is re-made and re-put: "row present, object missing");
2. list the minute's frames (every source, every site), download each, decode it with
   its source's reader and score it with the quality gate (:mod:`.candidates`);
3. choose one (:mod:`.select`); the others keep their rejection reasons;
4. archive the chosen raw frame (conditional put: same bytes -> same object);
5. make the product's objects, or verify and adopt those a crash left (:mod:`.products`);
6. insert input frames, rejections and the product row in one transaction, then the
   minute's state and run record (:mod:`.records`).

A product counts only when its objects and its row both exist; steps 1 and 5
repair the two halves a crash can leave. Errors are classified once, here: a
transient failure (upstream, database, store I/O) is a ``retry`` with capped
exponential backoff across ticks; a fatal one or a bug fails the minute, and
the service goes on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from service import observability as obs
from service.errors import FatalError, FrameRejected, RetryableError
from service.pipeline.candidates import Candidate, gather, minute_budget
from service.pipeline.context import PipelineContext
from service.pipeline.products import existing_product, put, repair_objects, store_product
from service.pipeline.records import record_frames, record_minute
from service.pipeline.runtime import LoadedModel
from service.pipeline.select import choose
from service.sources.base import RemoteFrame
from service.storage import ObjectExists, raw_key
from service.vocabulary import Outcome, Reason, Stage

log = logging.getLogger(__name__)
outcome_log = logging.getLogger("synmag.minute")

__all__ = ["MAX_ATTEMPTS", "RETRY_BACKOFF", "MinuteOutcome", "list_minute", "process_minute"]

# A minute whose downloads keep failing is retried this many times, with backoff.
MAX_ATTEMPTS = 5
RETRY_BACKOFF = timedelta(seconds=60)


@dataclass
class MinuteOutcome:
    """How one minute ended (one structured log line)."""

    minute: datetime
    outcome: Outcome
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


def exists_outcome(ctx: PipelineContext, minute: datetime, version: str, remote: RemoteFrame | None = None) -> MinuteOutcome:
    """The outcome of a minute whose product another writer (or an earlier run) committed."""
    existing = existing_product(ctx, minute, version)
    return MinuteOutcome(
        minute, Outcome.EXISTS, site=existing.site if existing else (remote.site if remote else None),
        filename=remote.name if remote else None, product_id=existing.id if existing else None,
        model_version=version,
    )


def list_minute(ctx: PipelineContext, minute: datetime) -> list[RemoteFrame]:
    """The frames every source lists for ``minute``."""
    deadline = time.monotonic() + minute_budget(ctx.settings)
    frames = []
    for source in ctx.sources.values():
        listed = source.list_recent(minute + timedelta(seconds=59), minute, deadline)
        frames.extend(f for f in listed if f.minute == minute)
    return frames


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
    # The H-alpha-only model (the fallback) names the minute until a product says otherwise.
    loaded = ctx.runtime.loaded
    model = ctx.runtime.current or (loaded[0] if loaded else None)
    if model is None:
        result = MinuteOutcome(minute, Outcome.NO_MODEL, detail="no model available")
        _finish(ctx, result, started)
        return result
    try:
        result = _process(minute, ctx, model, frames)
    except (RetryableError, SQLAlchemyError, OSError) as exc:
        if isinstance(exc, SQLAlchemyError):
            obs.database_errors_total.inc()
        result = MinuteOutcome(minute, Outcome.RETRY, model_version=model.version, detail=f"{type(exc).__name__}: {exc}")
    except (FatalError, ObjectExists) as exc:
        result = MinuteOutcome(minute, Outcome.FAILED, model_version=model.version, detail=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug or an unforeseen input: this minute fails, the service goes on
        log.exception("minute %s failed", minute)
        result = MinuteOutcome(minute, Outcome.FAILED, model_version=model.version, detail=f"{type(exc).__name__}: {exc}")
    try:
        _finish(ctx, result, started)
    except SQLAlchemyError as exc:  # the database is down: the minute stays pending
        obs.database_errors_total.inc()
        log.error("could not record minute %s: %s", minute, exc)
    return result


def _process(minute: datetime, ctx: PipelineContext, model: LoadedModel, frames: list[RemoteFrame] | None) -> MinuteOutcome:
    for loaded in ctx.runtime.loaded:  # a minute is served once, by whichever kind served it
        existing = existing_product(ctx, minute, loaded.version)
        if existing is not None:
            repaired = repair_objects(ctx, existing, loaded)
            return MinuteOutcome(
                minute, Outcome.REPAIRED if repaired else Outcome.EXISTS, site=existing.site,
                product_id=existing.id, model_version=loaded.version,
                detail="re-put missing objects" if repaired else "",
            )
    if frames is None:
        frames = list_minute(ctx, minute)
    if not frames:
        return MinuteOutcome(minute, Outcome.NO_FRAMES, model_version=model.version, detail="nothing listed")
    return _make(minute, ctx, model, gather(ctx.sources, frames, ctx.settings))


def _make(minute: datetime, ctx: PipelineContext, model: LoadedModel, candidates: list[Candidate]) -> MinuteOutcome:
    """Choose among the candidates still usable, make and commit the product."""
    for c in candidates:  # a fresh choice: earlier losers compete again
        c.reasons = [r for r in c.reasons if r != Reason.NOT_SELECTED]
    selection = choose(candidates)
    rejected = {c.remote.name: [str(r) for r in c.reasons] for c in selection.rejected}
    chosen = selection.chosen
    if chosen is None:
        retryable = any(Reason.DOWNLOAD_FAILED in c.reasons for c in candidates)
        record_frames(ctx, candidates, product=None)
        return MinuteOutcome(
            minute, Outcome.RETRY if retryable else Outcome.REJECTED, model_version=model.version,
            detail="no usable frame", rejected=rejected, timings=_sum_timings(candidates),
        )

    timings = dict(chosen.timings)
    download = chosen.download
    assert download is not None
    t0 = time.perf_counter()
    raw_uri = put(ctx.store, raw_key(chosen.remote.obs_time, chosen.remote.source, chosen.remote.name),
                  download.data, "application/fits")
    timings[Stage.WRITE] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, prior, note = ctx.serving_model(chosen.remote.obs_time)
    timings[Stage.PREPROCESS] = time.perf_counter() - t0  # the prior is the nowcast's preprocessing
    try:
        product, how = store_product(ctx, minute, chosen, model, timings, prior, note)
    except FrameRejected as exc:  # refused by the forward transform or the model's output
        chosen.reject(exc.reason, exc.detail)
        return _make(minute, ctx, model, candidates)
    for stage_name, seconds in timings.items():
        obs.observe_stage(stage_name, seconds)

    product_id = record_frames(ctx, candidates, product=product, chosen=chosen, raw_uri=raw_uri)
    if product_id is None:  # another writer committed this key first
        return exists_outcome(ctx, minute, model.version, chosen.remote)
    obs.product_committed(chosen.remote.obs_time.timestamp(), kind=product.model_kind, prior_age_h=product.prior_age_h)
    return MinuteOutcome(
        minute, how, site=chosen.remote.site, filename=chosen.remote.name, product_id=product_id,
        obs_time=chosen.remote.obs_time, model_version=model.version,
        timings={str(k): v for k, v in timings.items()}, rejected=rejected,
    )


def _sum_timings(candidates: list[Candidate]) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in candidates:
        for k, v in c.timings.items():
            total[str(k)] = total.get(str(k), 0.0) + v
    return total


def _finish(ctx: PipelineContext, result: MinuteOutcome, started: datetime) -> None:
    """Record the run and the minute's state; count and log the outcome."""
    record_minute(ctx, result.minute, result.outcome, result.detail, result.log_line(), started,
                  MAX_ATTEMPTS, RETRY_BACKOFF)
    obs.runs_total.labels(outcome=result.outcome).inc()
    outcome_log.info(result.log_line())
