"""The scheduler: APScheduler 3 interval jobs that only trigger work.

Every ``tick_seconds`` (10 by default) the tick checks leadership (one active
scheduler across replicas, :mod:`service.pipeline.leader`), reloads the model
if production changed, lists every frame source once, records when each minute's
first frame was listed, asks :mod:`catchup` which minutes are due (newest first,
bounded per tick) and runs the idempotent ``process_minute`` for each. A second job
verifies recent products against a magnetogram source every ``verify_every_s``, so a
slow truth source never delays a product. ``coalesce=True`` and ``max_instances=1``: a slow
tick (a 20 s upstream) delays the next one instead of stacking them, and
``misfire_grace_time`` drops ticks that could not start in time.

The job store is APScheduler's in-memory default: a shared job store would
run each job once per replica.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from service import observability as obs
from service.db import session_scope
from service.errors import FatalError, RetryableError
from service.pipeline import catchup
from service.pipeline.context import PipelineContext
from service.pipeline.leader import Leadership
from service.pipeline.minute import MinuteOutcome, process_minute
from service.pipeline.select import group_by_minute
from service.sources.base import RemoteFrame
from service.vocabulary import Outcome

log = logging.getLogger(__name__)

JOB_ID = "synmag-tick"
VERIFY_JOB_ID = "synmag-verify"
# Products scored per run of the verification job (every SYNMAG_VERIFY_EVERY_S).
VERIFY_PER_RUN = 2


@dataclass
class TickReport:
    leader: bool
    due: int = 0
    outcomes: list[MinuteOutcome] = field(default_factory=list)
    error: str | None = None


class PipelineScheduler:
    """Runs :meth:`tick` every ``settings.tick_seconds`` in a background thread.

    Parameters
    ----------
    ctx : PipelineContext
    leadership : Leadership
    truth : service.sources.magnetograms.base.MagnetogramSource, optional
        When given, a second job verifies a few recent products against it.
    state : service.api.state.AppState, optional
        What the API reports (last tick, newest product).
    on_fatal : callable, optional
        Called (from the scheduler thread) when a tick hits a
        :class:`~service.errors.FatalError` the service cannot run with, e.g.
        a model that fell back to the CPU under ``SYNMAG_REQUIRE_GPU``.
    """

    def __init__(
        self, ctx: PipelineContext, leadership: Leadership, on_fatal: Any = None, state: Any = None,
        truth: Any = None,
    ) -> None:
        self.ctx = ctx
        self.truth = truth  # a MagnetogramSource, or None: no verification
        self.state = state  # service.api.state.AppState, told of ticks and products
        self.leadership = leadership
        self.on_fatal = on_fatal
        self._stop = threading.Event()
        self._first_seen: dict[datetime, datetime] = {}  # minute -> when its first frame was listed
        self._scheduler: BackgroundScheduler | None = None
        self.ticks = 0

    # -- the tick -------------------------------------------------------------------
    def tick(self) -> TickReport:
        """One scheduling round; never raises (errors are logged and counted)."""
        t0 = time.perf_counter()
        try:
            return self._tick()
        except FatalError as exc:
            log.error("fatal: %s", exc)
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return TickReport(leader=self.leadership.is_leader, error=str(exc))
        except Exception as exc:  # a bad tick must not kill the scheduler
            log.exception("tick failed: %s", exc)
            return TickReport(leader=self.leadership.is_leader, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.ticks += 1
            obs.tick_seconds.observe(time.perf_counter() - t0)
            obs.last_tick_timestamp_seconds.set(time.time())
            if self.state is not None:
                self.state.last_tick_at = datetime.now(UTC)

    def _tick(self) -> TickReport:
        settings = self.ctx.settings
        if not self.leadership.check():
            return TickReport(leader=False)
        self.ctx.runtime.refresh()
        now = self.ctx.now()
        since = catchup.window_start(now, settings.catchup_hours)
        listed, errors = self._list(now, since)
        if errors and not listed:
            return TickReport(leader=True, error="; ".join(errors))
        frames = group_by_minute(listed)
        self._first_seen = {m: t for m, t in self._first_seen.items() if m >= since}
        for minute in frames:
            self._first_seen.setdefault(minute, now)
        with session_scope(self.ctx.sessions) as session:
            states = catchup.load_states(session, since)
        minutes, due = catchup.plan(
            listed, states, now, since=since, settle_s=settings.minute_settle_s,
            limit=settings.minutes_per_tick, model_loaded=bool(self.ctx.runtime.loaded),
            first_seen=self._first_seen,
        )
        obs.catchup_backlog_minutes.set(due)
        report = TickReport(leader=True, due=due, error="; ".join(errors) or None)
        for minute in minutes:
            if self._stop.is_set():
                break
            if not self.leadership.check():  # lost the lock mid-tick: stop at a minute boundary
                break
            outcome = process_minute(minute, self.ctx, frames[minute])
            report.outcomes.append(outcome)
            if outcome.outcome in (Outcome.PRODUCT, Outcome.REPAIRED) and outcome.obs_time:
                committed = self.ctx.now()
                obs.listed_to_product_seconds.observe((committed - self._first_seen[minute]).total_seconds())
                if self.state is not None:
                    self.state.product_committed(outcome.obs_time, committed)
        return report

    def _list(self, now: datetime, since: datetime) -> tuple[list[RemoteFrame], list[str]]:
        """Every source's frames in the window; a source whose listing fails is skipped this tick."""
        deadline = time.monotonic() + 2 * self.ctx.settings.http_timeout_s
        listed: list[RemoteFrame] = []
        errors = []
        for name, source in self.ctx.sources.items():
            try:
                listed.extend(source.list_recent(now, since, deadline=deadline))
            except (RetryableError, FatalError) as exc:
                log.warning("%s listing failed, its frames wait for a later tick: %s", name, exc)
                errors.append(f"{name}: {exc}")
        return listed, errors

    def verify(self) -> None:
        """Score a few recent products against HMI truth (its own job: never delays a minute)."""
        if self.truth is None or self._stop.is_set() or not self.leadership.is_leader:
            return
        from service.verification.verify import verify_pending

        try:
            verify_pending(self.ctx.sessions, self.ctx.store, self.truth, limit=VERIFY_PER_RUN)
        except Exception as exc:  # verification must never stop the feed
            log.warning("verification failed this tick: %s", exc)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        settings = self.ctx.settings
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=settings.tick_seconds, timezone=UTC),
            id=JOB_ID,
            name="synmag pipeline tick",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=settings.misfire_grace_s,
            next_run_time=datetime.now(UTC),  # first tick now, not one period from now
        )
        if self.truth is not None:
            scheduler.add_job(
                self.verify, IntervalTrigger(seconds=settings.verify_every_s, timezone=UTC), id=VERIFY_JOB_ID,
                name="synmag verification", coalesce=True, max_instances=1,
                misfire_grace_time=settings.misfire_grace_s,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started: tick every %d s, catch-up %.1f h, %d minutes per tick",
                 settings.tick_seconds, settings.catchup_hours, settings.minutes_per_tick)

    def stop(self, wait: bool = True) -> None:
        """Stop ticking; the running tick finishes its current minute first."""
        self._stop.set()
        if self.truth is not None:
            self.truth.abort()  # a verification waiting out a JSOC outage ends now
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        self.leadership.release()
