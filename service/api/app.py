"""The FastAPI application of the feed: ``create_app(settings, state)``.

``synmag serve`` runs it under uvicorn beside the scheduler and passes its
:class:`~service.api.state.AppState`; tests and API-only processes pass
``state=None``. The database engine and object store are built here once (or
handed in) and shared by every request through ``service.api.deps``.

The API documentation (Swagger UI at ``/docs``) is served from assets installed
with the package (fastapi-offline), never from a CDN, so it works on an isolated
network; ReDoc is off (its bundle fetches a logo from a CDN). ``/v1/magnetograms/latest`` is answered from
memory (:mod:`service.api.latest`), told of this process's new products through
``state``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from service import __version__
from service.api.deps import links_base
from service.api.latest import LatestCache
from service.api.routes import health, magnetograms, metric_table, models, status
from service.api.state import AppState
from service.db import make_engine, session_factory
from service.observability import init_metrics
from service.settings import Settings
from service.storage import ObjectStore, open_store

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(
    settings: Settings,
    state: AppState | None = None,
    *,
    engine: Engine | None = None,
    store: ObjectStore | None = None,
    pipeline_metrics: Callable[[], bytes | None] | None = None,
) -> FastAPI:
    """Build the feed API.

    Parameters
    ----------
    settings : Settings
        Database, store, admin token, public URL, staleness limit.
    state : AppState, optional
        The running pipeline's runtime (model, providers, last product); None for an
        API-only process.
    engine, store : optional
        Reuse the caller's database engine and object store instead of opening new ones.
    pipeline_metrics : callable, optional
        The Prometheus exposition of the process running the pipeline (``synmag serve``'s
        child), served by ``/metrics`` in place of this process's copies of those metrics.
    """
    app: FastAPI = FastAPIOffline(
        static_url="/static/docs",  # Swagger UI's assets, from the installed package
        # ReDoc would still fetch its logo from a CDN: off (Swagger UI at /docs is the doc).
        redoc_url=None,
        # Swagger UI would send the spec to validator.swagger.io from a non-loopback host.
        swagger_ui_parameters={"validatorUrl": None},
        title="synmag feed",
        version=__version__,
        description=(
            "Synthetic SDO/HMI-like line-of-sight magnetograms (Gauss) made from GONG "
            "H-alpha frames. Not HMI observations: the field saturates at +-200 G."
        ),
    )
    init_metrics()  # every series exists at zero before the first event
    app.state.settings = settings
    app.state.runtime = state
    app.state.engine = engine if engine is not None else make_engine(settings)
    app.state.sessions = session_factory(app.state.engine)
    app.state.store = store if store is not None else open_store(settings)
    app.state.pipeline_metrics = pipeline_metrics
    app.state.latest = LatestCache(app.state.sessions, links_base(settings), store=app.state.store)
    if state is not None:
        state.subscribe(app.state.latest.changed)

    app.include_router(magnetograms.router)
    app.include_router(models.router)
    app.include_router(status.router)
    app.include_router(metric_table.router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def viewer() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    return app
