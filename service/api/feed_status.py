"""``/v1/status``: what the feed has and, when it shows nothing (new), why.

The viewer's empty state reads it instead of guessing: no product yet, no model
(none loaded here, none in production), the pipeline starting, stopped or not
leading, the last tick's error (an unreachable archive says so), the last
minute's outcome. Facts come from this process's :class:`~service.api.state.AppState`
when it runs the pipeline and from the database otherwise (any replica's runs).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api import products
from service.api.schemas import FeedStatus, RunInfo
from service.api.state import AppState
from service.db import ModelVersion, Product, Run
from service.vocabulary import ModelKind, ModelStatus

DETAIL_CHARS = 300  # a run's or tick's error is cut here: one line in a viewer


def _line(text: object) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= DETAIL_CHARS else one[: DETAIL_CHARS - 3] + "..."


def last_run(session: Session) -> RunInfo | None:
    """The newest recorded run (primary-key order), its outcome and reason."""
    run = session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).first()
    if run is None:
        return None
    outcome, detail = run.outcome, None
    try:
        logged = json.loads(run.detail) if run.detail else None
    except ValueError:
        logged = None
    if isinstance(logged, dict):  # the minute's JSON log line (pipeline.job.MinuteOutcome)
        outcome = logged.get("outcome") or outcome
        why = logged.get("detail") or logged.get("rejected")
        detail = _line(why) if why else None
    elif run.detail:
        detail = _line(run.detail)
    return RunInfo(obs_minute=run.obs_minute, finished_at=run.finished_at, outcome=outcome, detail=detail)


def feed_status(session: Session, runtime: AppState | None, stale_after_s: float) -> FeedStatus:
    """Gather the facts and say, most likely first, why nothing (new) is shown."""
    latest: Product | None = products.latest_product(session)
    by_kind = {kind: version for kind, version in session.execute(
        select(ModelVersion.kind, ModelVersion.version).where(ModelVersion.status == ModelStatus.PRODUCTION))}
    production = by_kind.get(ModelKind.HALPHA)  # the fallback, which every minute can use
    status = FeedStatus(
        has_products=latest is not None,
        latest_obs_time=latest.obs_time if latest else None,
        latest_committed_at=latest.created_at if latest else None,
        production_model=production,
        production_models=by_kind,
        last_run=last_run(session),
    )
    if runtime is not None:
        status.pipeline = runtime.pipeline
        status.pipeline_detail = runtime.pipeline_detail
        status.model_loaded = runtime.model_loaded
        status.model_version = runtime.model_version
        status.active_providers = list(runtime.active_providers)
        status.leader = runtime.leader
        status.last_tick_at = runtime.last_tick_at
        status.last_tick_error = _line(runtime.last_tick_error) if runtime.last_tick_error else None
    status.reasons = _reasons(status, runtime, stale_after_s)
    return status


def _reasons(s: FeedStatus, runtime: AppState | None, stale_after_s: float) -> list[str]:
    reasons: list[str] = []
    if s.latest_committed_at is not None:
        age = (datetime.now(UTC) - s.latest_committed_at).total_seconds()
        if age <= stale_after_s:
            return []
        reasons.append(f"the newest product was committed {age / 60:.0f} min ago")
    if runtime is not None:
        if s.pipeline == "starting":
            reasons.append("the feed is starting: the model is being loaded")
        elif s.pipeline in ("stopping", "stopped", "failed"):
            reasons.append(f"the feed is not running ({s.pipeline})"
                           + (f": {s.pipeline_detail}" if s.pipeline_detail else ""))
        elif not s.model_loaded:
            reasons.append(_no_model(s))
        if s.pipeline in ("running", None):
            if s.last_tick_error:
                reasons.append(f"the last scheduler tick failed: {s.last_tick_error}")
            if s.leader is False:
                reasons.append("this replica is not scheduling: another replica holds the leader lock")
            elif s.last_tick_at is None:
                reasons.append("waiting for the scheduler's first tick")
    else:
        if s.production_model is None:
            reasons.append(_no_model(s))
        if s.last_run is None:
            reasons.append("no observation minute has been processed yet: is `synmag serve` running "
                           "and the GONG archive reachable?")
    run = s.last_run
    if run is not None and run.outcome not in (None, "product", "exists", "repaired"):
        reasons.append(f"last minute processed, {run.obs_minute:%Y-%m-%d %H:%M}Z: {run.outcome}"
                       + (f" ({run.detail})" if run.detail else ""))
    if not reasons and not s.has_products:
        reasons.append("no minute has been processed yet")
    return reasons


def _no_model(s: FeedStatus) -> str:
    if s.production_model is None:
        return ("no model: the registry has no production version and SYNMAG_MODEL is not set "
                "(promote one, or bundle one in models/)")
    return f"no model loaded: the production version {s.production_model} is not loaded here"
