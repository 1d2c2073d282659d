"""``/v1/models``: registered model versions; promote and rollback for admins."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from service.api.deps import AdminDep, RuntimeDep
from service.api.params import ModelVersionPath
from service.api.schemas import ErrorBody, ModelAction, ModelInfo, ModelList
from service.db import ModelVersion
from service.errors import UsageError

router = APIRouter(prefix="/v1/models", tags=["models"])

ADMIN_ERRORS = {
    401: {"model": ErrorBody, "description": "no bearer token"},
    403: {"model": ErrorBody, "description": "wrong token, or admin is off"},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody, "description": "refused by the promotion gate or the registry"},
}


def _registry(request: Request):  # noqa: ANN202 - Registry is imported lazily
    from service.registry import Registry

    return Registry(request.app.state.settings, engine=request.app.state.engine,
                    store=request.app.state.store)


def _info(mv: ModelVersion) -> ModelInfo:
    return ModelInfo(
        version=mv.version,
        status=mv.status,
        production=mv.status == "production",
        sha256=mv.sha256,
        preprocess_version=mv.preprocess_version,
        created=mv.created_at,
        promoted_at=mv.promoted_at,
        metrics=mv.metrics or {},
        lineage=mv.lineage or {},
    )


@router.get("", response_model=ModelList)
def list_models(request: Request, runtime: RuntimeDep) -> ModelList:
    """Every registered version, oldest first, and which one is production."""
    versions = _registry(request).list()
    production = next((mv.version for mv in versions if mv.status == "production"), None)
    return ModelList(
        models=[_info(mv) for mv in versions],
        production=production,
        loaded=runtime.model_version if runtime else None,
        active_providers=list(runtime.active_providers) if runtime else [],
    )


@router.post(
    "/{version}/promote", response_model=ModelAction, responses=ADMIN_ERRORS,
    dependencies=[AdminDep],
)
async def promote(version: ModelVersionPath, request: Request, force: bool = False) -> ModelAction:
    """Make ``version`` production; the promotion gate runs unless ``force=true``."""
    from service.registry import GateFailed

    registry = _registry(request)
    if await run_in_threadpool(registry.get, version) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown model version {version!r}")
    try:
        mv = await run_in_threadpool(registry.promote, version, force)
    except GateFailed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except UsageError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return ModelAction(action="promote", production=mv.version)


async def _rollback(request: Request) -> ModelAction:
    try:
        mv = await run_in_threadpool(_registry(request).rollback)
    except UsageError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return ModelAction(action="rollback", production=mv.version)


@router.post("/rollback", response_model=ModelAction, responses=ADMIN_ERRORS, dependencies=[AdminDep])
async def rollback(request: Request) -> ModelAction:
    """Put the previous production version back (the current one becomes ``rejected``)."""
    return await _rollback(request)


@router.post(
    "/{version}/rollback", response_model=ModelAction, responses=ADMIN_ERRORS,
    dependencies=[AdminDep],
)
async def rollback_version(version: ModelVersionPath, request: Request) -> ModelAction:
    """Roll ``version`` back; refused (409) unless it is the version in production."""
    production = await run_in_threadpool(_registry(request).production)
    if production is None or production.version != version:
        current = production.version if production else "none"
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{version!r} is not in production (production: {current})"
        )
    return await _rollback(request)
