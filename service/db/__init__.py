"""Database: SQLAlchemy 2 models, engine/session helpers, Alembic migrations."""

from __future__ import annotations

from service.db.engine import make_engine, session_factory, session_scope
from service.db.models import (
    Base,
    InputFrame,
    MinuteState,
    ModelEvent,
    ModelVersion,
    Product,
    Rejection,
    Run,
)
from service.db.types import json_safe, utc_minute, utcnow

__all__ = [
    "Base",
    "InputFrame",
    "MinuteState",
    "ModelEvent",
    "ModelVersion",
    "Product",
    "Rejection",
    "Run",
    "json_safe",
    "make_engine",
    "session_factory",
    "session_scope",
    "utc_minute",
    "utcnow",
]
