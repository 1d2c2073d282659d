"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# JSON documents: JSONB on PostgreSQL, JSON (text) on SQLite.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored as UTC, always read back aware in UTC.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is
    stored as naive UTC text and marked UTC again when read. Naive datetimes
    are refused on the way in: they are ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def utc_minute(t: datetime) -> datetime:
    """``t`` in UTC, truncated to the minute (the pipeline's observation-minute key)."""
    if t.tzinfo is None:
        raise ValueError("utc_minute needs a timezone-aware datetime")
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf replaced by ``None``, tuples by lists, numpy scalars by Python
    numbers (JSONB-safe: JSON, and PostgreSQL's JSONB, have no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value
