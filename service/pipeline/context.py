"""What every job of the pipeline works with, built once by ``open_pipeline`` (or a test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from service.pipeline.runtime import ModelRuntime
from service.settings import Settings
from service.sources.base import FrameSource
from service.storage import ObjectStore

__all__ = ["PipelineContext"]


@dataclass
class PipelineContext:
    """Settings, frame sources (by name), object store, database sessions, model runtime, clock."""

    settings: Settings
    sources: dict[str, FrameSource]
    store: ObjectStore
    sessions: sessionmaker[Session]
    runtime: ModelRuntime
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def abort(self) -> None:
        """Every source stops retrying (the service is stopping)."""
        for source in self.sources.values():
            source.abort()

    def close(self) -> None:
        """Release the sources' connections."""
        for source in self.sources.values():
            source.close()
