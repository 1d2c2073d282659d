"""The database side of a minute: input frames, rejections, the product row, the run and state.

Each function is one transaction. A product row and its input frames commit together
(:func:`record_frames`); a minute's run and state after its outcome (:func:`record_minute`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import observability as obs
from service.db import InputFrame, MinuteState, Product, Rejection, Run, session_scope
from service.pipeline.candidates import Candidate
from service.pipeline.context import PipelineContext
from service.vocabulary import MinuteStatus, Outcome, Reason

log = logging.getLogger(__name__)

__all__ = ["add_product", "record_frames", "record_minute"]


def record_frames(
    ctx: PipelineContext,
    candidates: list[Candidate],
    product: Product | None,
    chosen: Candidate | None = None,
    raw_uri: str | None = None,
) -> int | None:
    """One transaction: input frames, rejections, and the product row.

    Returns the product id, or ``None`` when there is no product or its key was already taken.
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


def add_product(ctx: PipelineContext, product: Product) -> int | None:
    """Insert a product row alone (the backfill: its input frame is recorded); None if the key is taken."""
    try:
        with session_scope(ctx.sessions) as session:
            session.add(product)
            session.flush()
            return product.id
    except IntegrityError:
        return None


def _upsert_input_frame(session: Session, candidate: Candidate, raw_uri: str | None) -> InputFrame | None:
    if candidate.download is None:
        return None
    remote = candidate.remote
    row = session.scalars(
        select(InputFrame).where(InputFrame.source == remote.source, InputFrame.filename == remote.name)
    ).first()
    if row is None:
        row = InputFrame(
            source=remote.source,
            filename=remote.name,
            url=remote.url,
            site=remote.site,
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
        row.quality = candidate.quality_record()
    if raw_uri is not None:
        row.raw_uri = raw_uri
    return row


def _add_rejections(session: Session, candidate: Candidate) -> None:
    remote = candidate.remote
    known = set(session.scalars(
        select(Rejection.reason).where(Rejection.source == remote.source, Rejection.filename == remote.name)
    ))
    for text in candidate.reasons:
        if text in known:
            continue
        known.add(text)
        reason = Reason.of(text)
        session.add(Rejection(
            source=remote.source, filename=remote.name, url=remote.url, site=remote.site,
            obs_time=remote.obs_time, obs_minute=remote.minute, stage=reason.stage, reason=text,
            detail=candidate.detail or None,
        ))
        obs.reject(text)


def record_minute(
    ctx: PipelineContext, minute: datetime, outcome: Outcome, detail: str | None, log_line: str,
    started: datetime, max_attempts: int, backoff: timedelta,
) -> None:
    """The minute's run and its new state; a retry waits ``backoff * 2**(attempts-1)``, and
    fails for good after ``max_attempts``."""
    now = ctx.now()
    with session_scope(ctx.sessions) as session:
        state = session.get(MinuteState, minute)
        if state is None:
            state = MinuteState(obs_minute=minute, state=MinuteStatus.PENDING, attempts=0)
            session.add(state)
        state.attempts = (state.attempts or 0) + 1
        new_state = outcome.status
        if outcome is Outcome.RETRY:
            if state.attempts >= max_attempts:
                new_state = MinuteStatus.FAILED
            else:
                state.next_attempt_at = now + backoff * 2 ** (state.attempts - 1)
        state.state = new_state
        state.detail = Outcome.NO_MODEL if outcome is Outcome.NO_MODEL else (detail or None)
        session.add(Run(
            obs_minute=minute, started_at=started, finished_at=now,
            outcome=outcome.run_outcome, detail=log_line, attempt=state.attempts,
        ))
