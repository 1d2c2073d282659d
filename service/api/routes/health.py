"""``/healthz`` (process alive), ``/readyz`` (able to serve a fresh feed), ``/metrics``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from service import __version__
from service.api.deps import RuntimeDep, SessionDep, SettingsDep, StoreDep
from service.api.schemas import Check, Health, Readiness
from service.db import Product
from service.observability import REGISTRY

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive and answering."""
    return Health(status="ok", version=__version__)


def _check_database(session: SessionDep) -> tuple[Check, datetime | None]:
    try:
        session.execute(text("SELECT 1"))
        newest = session.scalar(select(func.max(Product.created_at)))
    except Exception as exc:  # any driver error means "not ready", with its text
        return Check(ok=False, detail=f"database error: {type(exc).__name__}: {exc}"), None
    return Check(ok=True, detail="reachable"), newest


def _check_store(store: StoreDep) -> Check:
    try:
        store.exists("readyz/probe")
    except Exception as exc:  # unreachable endpoint, bad credentials, missing bucket
        return Check(ok=False, detail=f"store error: {type(exc).__name__}: {exc}")
    return Check(ok=True, detail=f"reachable ({store.url})")


def _check_feed(
    runtime: RuntimeDep, newest_in_db: datetime | None, stale_after_s: float
) -> Check:
    """Fresh when a product was committed within ``SYNMAG_STALE_AFTER_S``."""
    newest = newest_in_db
    if runtime is not None and runtime.last_product_committed_at is not None:
        newest = max(filter(None, (newest, runtime.last_product_committed_at)))
    if newest is None:
        return Check(ok=False, detail="no product committed yet")
    age = (datetime.now(UTC) - newest).total_seconds()
    if age > stale_after_s:
        return Check(ok=False, detail=f"stale: newest product committed {age:.0f} s ago "
                     f"(limit {stale_after_s:.0f} s)")
    return Check(ok=True, detail=f"newest product committed {age:.0f} s ago")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(
    session: SessionDep, store: StoreDep, runtime: RuntimeDep, settings: SettingsDep,
    response: Response,
) -> Readiness:
    """Database and store reachable, model loaded, feed not stale; 503 with reasons if not."""
    db_check, newest = await run_in_threadpool(_check_database, session)
    checks = {
        "database": db_check,
        "store": await run_in_threadpool(_check_store, store),
    }
    if runtime is None:
        checks["model"] = Check(ok=True, detail="not applicable: API-only process")
    elif runtime.model_loaded:
        providers = ", ".join(runtime.active_providers) or "unknown provider"
        checks["model"] = Check(ok=True, detail=f"{runtime.model_version} on {providers}")
    else:
        checks["model"] = Check(ok=False, detail="no model loaded")
    checks["feed"] = _check_feed(runtime, newest, settings.stale_after_s)
    ready = all(c.ok for c in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=ready, checks=checks)


@router.get("/metrics", response_class=Response, include_in_schema=True)
def metrics() -> Response:
    """Prometheus exposition of every synmag metric."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
