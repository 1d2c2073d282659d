"""An in-process feed for job tests (pytest plugin): replay archive, SQLite, file store, tiny model.

Fixtures
--------
world
    ``world(faults=None, model=True, **settings) -> World``: a replay archive of two real
    val days on loopback and a pipeline (``open_pipeline``) reading it. ``model`` is
    ``True`` (the ``tiny_onnx`` generator), ``False`` (none) or an ONNX path; ``prior=True``
    makes the replay the nowcast's prior source; other keywords override the
    :class:`~service.settings.Settings`. Every call in one test shares the same database
    and object store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.db import session_scope
from service.devtools.replay import Faults, ReplayArchive, serve_in_thread
from service.pipeline.context import PipelineContext
from service.pipeline.wiring import open_pipeline
from service.settings import Settings


@dataclass
class World:
    ctx: PipelineContext
    archive: ReplayArchive
    settings: Settings

    def minute(self, k: int = 0):
        return self.archive.frames_of_minute(k)[0].obs_time.replace(second=0)

    def count(self, model) -> int:
        with session_scope(self.ctx.sessions) as s:
            return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def world(data_dir: Path, tiny_onnx: Path, tmp_path: Path) -> Iterator:
    folder = tmp_path / "val"
    folder.mkdir()
    for halpha in sorted((data_dir / "val").glob("*_halpha.webp"))[:2]:
        (folder / halpha.name).symlink_to(halpha)
        hmi = halpha.with_name(halpha.name.replace("_halpha", "_hmi"))  # the truth, and the next day's prior
        (folder / hmi.name).symlink_to(hmi)
    made = []

    def make(faults: Faults | None = None, model: bool | Path = True, prior: bool = False, **overrides) -> World:
        archive = ReplayArchive(folder, cadence_s=60, rewind_minutes=5, backlog=2, sites="BL", faults=faults)
        server, url = serve_in_thread(archive)
        model_spec = str(tiny_onnx) if model is True else (str(model) if model else None)
        if prior:
            overrides = {"prior_source": "replay", "prior_url": url, **overrides}
        settings = Settings(
            database_url=f"sqlite:///{tmp_path}/db.sqlite", store_url=f"file://{tmp_path}/store",
            gong_base_url=url, model=model_spec,
            model_cache_dir=tmp_path / "cache", bundled_model_dir=tmp_path / "no-models",
            http_backoff_base_s=0.05, http_backoff_cap_s=0.1, **overrides,
        )
        pipeline = open_pipeline(settings)
        made.append((server, pipeline))
        return World(pipeline.ctx, archive, settings)

    yield make
    for server, pipeline in made:
        server.shutdown()
        server.server_close()
        pipeline.close()
