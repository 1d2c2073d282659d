"""What every job of the pipeline works with, built once by ``open_pipeline`` (or a test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.pipeline.prior import PriorFinder
from service.pipeline.runtime import ModelRuntime
from service.settings import Settings
from service.sources.base import FrameSource
from service.storage import ObjectStore

__all__ = ["PipelineContext"]


@dataclass
class PipelineContext:
    """Settings, frame sources (by name), object store, database sessions, model runtime, the
    nowcast's prior finder, clock."""

    settings: Settings
    sources: dict[str, FrameSource]
    store: ObjectStore
    sessions: sessionmaker[Session]
    runtime: ModelRuntime
    priors: PriorFinder = field(default_factory=lambda: PriorFinder(None))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def serving_model(self, obs_time: datetime) -> tuple[Any, Any, str | None]:
        """``(LoadedModel, prior or None, why none)`` for a frame observed at ``obs_time``: the
        same rule as ``synmag process`` (``service.inference.process.find_prior``)."""
        from service.inference.process import find_prior

        prior, why = find_prior(self.runtime.serving(), self.priors.find, obs_time)
        return self.runtime.choose(prior, why)

    def abort(self) -> None:
        """Every source stops retrying (the service is stopping)."""
        for source in self.sources.values():
            source.abort()
        self.priors.abort()

    def close(self) -> None:
        """Release the sources' connections."""
        for source in self.sources.values():
            source.close()
        self.priors.close()
