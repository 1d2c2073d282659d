"""Which observation minutes a tick should work on.

Driven by the archive listing: a minute is worth a run only when frames were
listed for it. Of those, inside the catch-up window (``catchup_hours``), the
minutes without a final state are taken newest first, at most
``minutes_per_tick`` of them: a fresh minute is never stuck behind hours of
backlog after downtime, and the backlog drains a few minutes each tick.

A minute is taken once it is over and ``minute_settle_s`` after its first frame
was listed: sites observe seconds apart and publish 30-80 s later, so the settle lets
the frames that appear together compete without holding a product back for the
slowest site (the latency goal: a product within 30 s of a frame appearing). A minute
older than :data:`ALL_PUBLISHED_AFTER` has every frame it will have and is taken at once
(after a restart, say, when no first sighting was recorded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import MinuteState
from service.pipeline.select import group_by_minute
from service.sources.base import RemoteFrame
from service.vocabulary import MinuteStatus, Outcome

# Frames are public 30-80 s after their observation: a minute this long over is complete.
ALL_PUBLISHED_AFTER = timedelta(seconds=60 + 90)

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
    first_seen: Mapping[datetime, datetime] | None = None,
) -> tuple[list[datetime], int]:
    """Minutes to run now (newest first) and how many are waiting in the window.

    Parameters
    ----------
    listed : iterable of RemoteFrame
        Frames the sources list.
    states : dict
        Recorded minute states (:func:`load_states`).
    now : datetime
    since : datetime
        Start of the catch-up window.
    settle_s : float
        Seconds after a minute's first frame was listed before it is taken.
    limit : int
        Most minutes returned.
    model_loaded : bool
        Minutes skipped for want of a model are due again once one is loaded.
    first_seen : mapping, optional
        When each minute's first frame was listed (the scheduler's record); a minute not in
        it counts as seen ``now``.
    """
    first_seen = first_seen or {}
    due = []
    for minute in group_by_minute(list(listed)):
        if minute < since or minute + timedelta(seconds=60) > now:
            continue
        ripe = min(first_seen.get(minute, now) + timedelta(seconds=settle_s), minute + ALL_PUBLISHED_AFTER)
        if ripe > now:
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
