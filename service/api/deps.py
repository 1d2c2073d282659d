"""Dependencies shared by the routes: settings, database session, store, runtime, admin auth.

Everything is built once in :func:`service.api.app.create_app` and kept on
``app.state``; these functions only hand it out, so routes stay thin.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.api.state import AppState
from service.settings import Settings
from service.storage import ObjectStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


def get_runtime(request: Request) -> AppState | None:
    return request.app.state.runtime


def get_session(request: Request) -> Iterator[Session]:
    """A read-mostly session per request, closed afterwards."""
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        session.close()


def links_base(settings: Settings) -> str:
    """Root of the links the API hands out: ``SYNMAG_PUBLIC_URL``, else ``""`` (relative links).

    Never the request's own URL: its ``Host`` header is whatever the client sent, and
    a cache or proxy would hand the links it made to everyone else.
    """
    return (settings.public_url or "").rstrip("/")


def base_url(request: Request) -> str:
    return links_base(request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
RuntimeDep = Annotated[AppState | None, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
BaseUrlDep = Annotated[str, Depends(base_url)]

_bearer = HTTPBearer(auto_error=False, description="SYNMAG_ADMIN_TOKEN")


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with ``Authorization: Bearer <SYNMAG_ADMIN_TOKEN>``.

    No token configured: admin is off (403). No credentials: 401. Wrong token: 403.
    """
    token = settings.admin_token
    if not token:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "admin is off: SYNMAG_ADMIN_TOKEN is not set on the server"
        )
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin route: send Authorization: Bearer <SYNMAG_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong admin token")


AdminDep = Depends(require_admin)
