"""``/v1/status``: what the feed has and why it shows nothing (new), for people and the viewer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from service.api.deps import RuntimeDep, SessionDep, SettingsDep
from service.api.feed_status import feed_status
from service.api.schemas import FeedStatus

router = APIRouter(prefix="/v1", tags=["feed"])


@router.get("/status", response_model=FeedStatus)
async def get_status(session: SessionDep, runtime: RuntimeDep, settings: SettingsDep) -> FeedStatus:
    """Newest product, model, pipeline and last run; ``reasons`` says why nothing (new) is shown."""
    return await run_in_threadpool(feed_status, session, runtime, settings.stale_after_s)
