"""Products of past minutes by another model version, made from the archived raw frames.

When a version is promoted the feed goes on with it, and the minutes before keep the
products of the version that made them. ``reprocess(ctx, start, end)`` adds, for every
minute in ``[start, end)`` that has a product, the product of the loaded model
(``ctx.runtime.current``) made from the same input frame: the raw FITS archived in the
object store, checked against the sha256 recorded when it was downloaded. Nothing is
fetched from the upstream archive, so a backfill gives the new version exactly the
inputs the old one had.

Keyed like every product, by (observation minute, model version): products already
there, of any version, are never touched, a second run adds nothing, and an interrupted
run goes on where it stopped. Input frames, rejections and minute states are the feed's
record of what happened and stay as they are; only product rows and objects are added.
The freshness gauge is left alone too: a backfilled product is not a new observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select

from service.db import InputFrame, Product, session_scope
from service.errors import FatalError, FrameRejected
from service.pipeline.candidates import (
    Candidate,
    archived_candidate,
    decode_and_gate,
    gate_thresholds,
)
from service.pipeline.context import PipelineContext
from service.pipeline.minute import MinuteOutcome, exists_outcome
from service.pipeline.products import existing_product, frame_obs_time, store_product
from service.pipeline.records import add_product
from service.pipeline.runtime import LoadedModel
from service.vocabulary import Outcome, Reason, Stage


def source_frames(ctx: PipelineContext, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """(minute, input frame id) of every minute in ``[start, end)`` with a product, oldest first.

    A minute's input is that of its first product (the feed chooses one frame a minute).
    """
    with session_scope(ctx.sessions) as session:
        rows = session.execute(
            select(Product.obs_minute, Product.input_frame_id)
            .where(Product.obs_minute >= start, Product.obs_minute < end)
            .order_by(Product.obs_minute, Product.id)
        ).all()
    first: dict[datetime, int] = {}
    for minute, frame_id in rows:
        first.setdefault(minute, frame_id)
    return list(first.items())


def reprocess(
    ctx: PipelineContext, start: datetime, end: datetime, on_outcome: Callable[[MinuteOutcome], None] | None = None
) -> list[MinuteOutcome]:
    """Make the loaded model's product for every minute of ``[start, end)`` that has one by another.

    Returns one outcome a minute: ``product``, ``exists`` (already there), ``repaired``
    (objects of an interrupted run adopted), ``rejected`` (the frame no longer passes the
    quality gate or the model's output is refused) or ``failed`` (the archived input is
    missing or damaged).
    """
    model = ctx.runtime.current
    if model is None:
        raise FatalError("no model loaded: nothing to reprocess with")
    outcomes = []
    for minute, frame_id in source_frames(ctx, start.astimezone(UTC), end.astimezone(UTC)):
        outcomes.append(reprocess_minute(ctx, minute, frame_id, model))
        if on_outcome is not None:
            on_outcome(outcomes[-1])
    return outcomes


def reprocess_minute(ctx: PipelineContext, minute: datetime, frame_id: int, model: LoadedModel) -> MinuteOutcome:
    """The product of ``model`` for ``minute`` from input frame ``frame_id`` (see the module docstring)."""
    if existing_product(ctx, minute, model.version) is not None:
        return exists_outcome(ctx, minute, model.version)
    with session_scope(ctx.sessions) as session:
        frame = session.get(InputFrame, frame_id)
        assert frame is not None  # products.input_frame_id is a foreign key
        filename, sha, raw_uri, source_name = frame.filename, frame.sha256, frame.raw_uri, frame.source
    out = MinuteOutcome(minute, Outcome.FAILED, filename=filename, model_version=model.version)
    source = ctx.sources.get(source_name)
    if source is None:
        out.detail = f"frame source {source_name!r} of {filename} is not configured (SYNMAG_FRAME_SOURCES)"
        return out
    t0 = time.perf_counter()
    try:
        candidate = archived_candidate(ctx.store, source, filename, sha, raw_uri)
    except FatalError as exc:
        out.detail = str(exc)
        return out
    candidate.timings[Stage.DOWNLOAD] = time.perf_counter() - t0
    decode_and_gate(candidate, source, gate_thresholds(ctx.settings))
    if not candidate.usable:
        out.outcome, out.detail = Outcome.REJECTED, f"{', '.join(candidate.reasons)} ({candidate.detail or 'refused'})"
        return out
    try:
        return _make(ctx, minute, candidate, frame_id, model)
    except FrameRejected as exc:  # refused by the forward transform or the model's output
        out.outcome, out.detail = Outcome.REJECTED, f"{exc.reason} ({exc.detail})"
        return out


def _make(
    ctx: PipelineContext, minute: datetime, candidate: Candidate, frame_id: int, model: LoadedModel
) -> MinuteOutcome:
    remote = candidate.remote
    timings = dict(candidate.timings)
    prior, note = None, None
    if model.generator.polarity_from_prior:  # a nowcast version: the frame's prior, as the feed finds it
        prior, note = ctx.priors.find(frame_obs_time(candidate))
        if prior is None:
            raise FrameRejected(Reason.NO_PRIOR, note or "no prior")
    product, how = store_product(ctx, minute, candidate, model, timings, prior, note)
    product.input_frame_id = frame_id
    product_id = add_product(ctx, product)
    if product_id is None:  # another writer committed this key first
        return exists_outcome(ctx, minute, model.version, remote)
    return MinuteOutcome(minute, how, site=remote.site, filename=remote.name, product_id=product_id,
                         obs_time=remote.obs_time, model_version=model.version,
                         timings={str(k): v for k, v in timings.items()})
