"""``/healthz`` (process alive), ``/readyz`` (able to serve a fresh feed), ``/metrics``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from service import __version__
from service.api.deps import RuntimeDep, SessionDep, SettingsDep, StoreDep
from service.api.schemas import Check, Health, Readiness
from service.api.state import AppState
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


def _check_pipeline(runtime: AppState) -> Check:
    """Running (leading or following), with its last tick; not ready while starting or stopping."""
    if runtime.pipeline != "running":
        detail = runtime.pipeline + (f": {runtime.pipeline_detail}" if runtime.pipeline_detail else "")
        return Check(ok=False, detail=detail)
    if runtime.last_tick_at is None:
        return Check(ok=True, detail="running, first tick not done yet")
    age = (datetime.now(UTC) - runtime.last_tick_at).total_seconds()
    role = "leader" if runtime.leader else "follower (another replica schedules)"
    error = f"; last tick failed: {runtime.last_tick_error}" if runtime.last_tick_error else ""
    return Check(ok=True, detail=f"running, {role}, last tick {age:.0f} s ago{error}")


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
        checks["pipeline"] = Check(ok=True, detail="not applicable: API-only process")
        checks["model"] = Check(ok=True, detail="not applicable: API-only process")
    elif runtime.model_loaded:
        providers = ", ".join(runtime.active_providers) or "unknown provider"
        checks["model"] = Check(ok=True, detail=f"{runtime.model_version} on {providers}")
    else:
        checks["model"] = Check(ok=False, detail="no model loaded")
    if runtime is not None and runtime.pipeline is not None:
        checks["pipeline"] = _check_pipeline(runtime)
    checks["feed"] = _check_feed(runtime, newest, settings.stale_after_s)
    ready = all(c.ok for c in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=ready, checks=checks)


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics(request: Request) -> Response:
    """Prometheus exposition of every synmag metric.

    Under ``synmag serve`` the pipeline's metrics live in its own process: its
    exposition is served, plus any family only this process has.
    """
    own = generate_latest(REGISTRY)
    source = request.app.state.pipeline_metrics
    pipeline = await run_in_threadpool(source) if source is not None else None
    body = merge_expositions(pipeline, own) if pipeline else own
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _families(text: bytes) -> list[tuple[bytes, bytes]]:
    """(name, block) of each metric family in a text exposition, in order."""
    families: list[tuple[bytes, list[bytes]]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith(b"# HELP "):
            families.append((line.split(b" ", 3)[2], []))
        if families:
            families[-1][1].append(line)
    return [(name, b"".join(lines)) for name, lines in families]


def merge_expositions(primary: bytes, secondary: bytes) -> bytes:
    """``primary``, then the families of ``secondary`` that ``primary`` lacks."""
    have = {name for name, _ in _families(primary)}
    extra = b"".join(block for name, block in _families(secondary) if name not in have)
    if primary and not primary.endswith(b"\n"):
        primary += b"\n"
    return primary + extra
