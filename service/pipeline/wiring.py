"""Build the running pipeline from settings: ``open_pipeline(settings)``.

One place wires settings -> migrations -> engine -> object store -> registry (the
bundled model registered as production when there is none) -> model runtime ->
frame sources (``SYNMAG_FRAME_SOURCES``) -> the prior finder (``SYNMAG_PRIOR_SOURCE``) ->
``PipelineContext``. ``synmag serve`` runs it at start; the job
tests and the latency bench run the same function, so they exercise the wiring
production uses rather than a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from service import observability as obs
from service.db import ModelVersion, make_engine, session_factory
from service.db.migrate import upgrade
from service.pipeline.context import PipelineContext
from service.pipeline.prior import PriorFinder
from service.pipeline.runtime import LoadedModel, ModelRuntime
from service.registry import Registry
from service.settings import Settings
from service.sources.registry import open_frame_sources
from service.storage import open_store


@dataclass
class Pipeline:
    """The wired pipeline and the handles its owner must close."""

    ctx: PipelineContext
    engine: Engine
    bundled: list[ModelVersion]  # the bundled models this start registered (one per kind at most)

    @property
    def runtime(self) -> ModelRuntime:
        return self.ctx.runtime

    def close(self) -> None:
        """Close the sources' HTTP clients and the database pool."""
        self.ctx.close()
        self.engine.dispose()


def open_pipeline(
    settings: Settings, *, on_model_change: Callable[[LoadedModel], None] | None = None
) -> Pipeline:
    """Migrate, connect, register the bundled model if needed, load the production model.

    Raises ``FatalError`` when ``SYNMAG_REQUIRE_GPU`` is set and no GPU provider starts.
    """
    engine = make_engine(settings)
    try:
        upgrade(settings, engine)
        store = open_store(settings)
        registry = Registry(settings, engine=engine, store=store)
        bundled = registry.ensure_bundled()
        runtime = ModelRuntime(settings, registry, on_change=on_model_change)
        runtime.check_gpu_available()
        runtime.refresh()
        sources = open_frame_sources(settings)
        priors = PriorFinder.from_settings(settings)
        obs.set_prior_source(priors.source is not None)
    except BaseException:
        engine.dispose()
        raise
    ctx = PipelineContext(
        settings=settings, sources=sources, store=store,
        sessions=session_factory(engine), runtime=runtime, priors=priors,
    )
    return Pipeline(ctx=ctx, engine=engine, bundled=bundled)
