"""A feed's past for backfill tests, benchmarks and drills: ``make_history(settings, folder, minutes)``.

A replay archive rewound by ``minutes`` publishes them all at once; the feed's own
``process_minute`` then runs on each, with ``settings``' model, database and store. What is
left is what a backfill finds after a season of operation: input frames archived in the
object store, and a product row per minute, made by another model version.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from service.devtools.replay import ReplayArchive, serve_in_thread
from service.pipeline.minute import process_minute
from service.pipeline.wiring import open_pipeline
from service.settings import Settings


def make_history(settings: Settings, folder: Path, minutes: int, sites: str = "B") -> list[datetime]:
    """Process ``minutes`` replayed minutes of ``folder`` (``*_halpha.webp`` or GONG frames).

    ``settings.gong_base_url`` is replaced by the replay's. Returns the minutes that got a
    product, oldest first; raises ``RuntimeError`` when a minute ends otherwise (the
    history is then not the one asked for).
    """
    archive = ReplayArchive(folder, cadence_s=3600, rewind_minutes=minutes + 2, backlog=minutes, sites=sites,
                            limit=minutes)
    server, url = serve_in_thread(archive)
    pipeline = open_pipeline(settings.model_copy(update={"gong_base_url": url}))
    try:
        done = []
        for k in range(minutes):
            minute = archive.frames_of_minute(k)[0].obs_time.replace(second=0)
            out = process_minute(minute, pipeline.ctx)
            if out.outcome != "product":
                raise RuntimeError(f"replayed minute {minute}: {out.outcome} ({out.detail})")
            done.append(minute)
        return done
    finally:
        pipeline.close()
        server.shutdown()
        server.server_close()
