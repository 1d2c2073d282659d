"""Which observation minutes a tick should work on.

Driven by the archive listing: a minute is worth a run only when frames were
listed for it. Of those, inside the catch-up window (``catchup_hours``), the
minutes without a final state are taken newest first, at most
``minutes_per_tick`` of them: a fresh minute is never stuck behind hours of
backlog after downtime, and the backlog drains a few minutes each tick.

A minute is taken once it is over and its frames have had ``minute_settle_s``
to appear (sites observe seconds apart and publish 30-80 s later).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import MinuteState
from service.pipeline.select import group_by_minute
from service.sources.base import RemoteFrame
from service.vocabulary import MinuteStatus, Outcome

FINAL_STATES = (MinuteStatus.DONE, MinuteStatus.SKIPPED, MinuteStatus.REJECTED, MinuteStatus.FAILED)


@dataclass(frozen=True)
class MinuteInfo:
    state: str
    next_attempt_at: datetime | None
    detail: str | None


def window_start(now: datetime, catchup_hours: float) -> datetime:
    """Oldest observation minute the catch-up reaches."""
    return (now - timedelta(hours=catchup_hours)).replace(second=0, microsecond=0)


def load_states(session: Session, since: datetime) -> dict[datetime, MinuteInfo]:
    """The recorded state of every minute since ``since``."""
    rows = session.scalars(select(MinuteState).where(MinuteState.obs_minute >= since))
    return {r.obs_minute: MinuteInfo(r.state, r.next_attempt_at, r.detail) for r in rows}


def plan(
    listed: Iterable[RemoteFrame],
    states: dict[datetime, MinuteInfo],
    now: datetime,
    *,
    since: datetime,
    settle_s: float,
    limit: int,
    model_loaded: bool,
) -> tuple[list[datetime], int]:
    """Minutes to run now (newest first) and how many are waiting in the window.

    Parameters
    ----------
    listed : iterable of RemoteFrame
        Frames the archive lists.
    states : dict
        Recorded minute states (:func:`load_states`).
    now : datetime
    since : datetime
        Start of the catch-up window.
    settle_s : float
        Seconds after a minute's end before it is taken.
    limit : int
        Most minutes returned.
    model_loaded : bool
        Minutes skipped for want of a model are due again once one is loaded.
    """
    due = []
    for minute in group_by_minute(list(listed)):
        if minute < since or minute + timedelta(seconds=60 + settle_s) > now:
            continue
        info = states.get(minute)
        if info is not None:
            redo_no_model = info.state == MinuteStatus.SKIPPED and info.detail == Outcome.NO_MODEL and model_loaded
            if info.state in FINAL_STATES and not redo_no_model:
                continue
            if info.state == MinuteStatus.PENDING and info.next_attempt_at is not None and info.next_attempt_at > now:
                continue
        due.append(minute)
    due.sort(reverse=True)
    return due[:limit], len(due)
