"""The minutes of a backfill cut into partitions: one Dask task each.

Partitions are aligned on the clock (an ``1h`` partition is one UTC hour), so the same range
gives the same partitions and the same task keys on every run. Small enough to rebalance
(a worker that dies loses one partition's work in flight, which its retry finds done),
large enough that the scheduler's overhead per task (milliseconds) is nothing beside a
partition's minutes of inference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Partition:
    """The minutes of ``[start, start + size)`` that have a product: ``(minute, input frame id)``."""

    start: datetime
    items: tuple[tuple[datetime, int], ...]

    def __len__(self) -> int:
        return len(self.items)


def parse_partition(text: str) -> timedelta:
    """``--partition``: ``90s``, ``30m``, ``1h``, ``1d``; a whole number of minutes, at least one."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"--partition: not a duration like 30m, 1h or 1d: {text!r}")
    seconds = int(match[1]) * _UNIT_S[match[2]]
    if seconds < 60 or seconds % 60:
        raise UsageError(f"--partition: a whole number of minutes, at least one: {text!r}")
    return timedelta(seconds=seconds)


def plan_partitions(frames: list[tuple[datetime, int]], size: timedelta) -> list[Partition]:
    """``frames`` (minute, frame id), oldest first, grouped by clock-aligned windows of ``size``.

    Windows without a minute to do make no partition.
    """
    step = size.total_seconds()
    groups: dict[datetime, list[tuple[datetime, int]]] = {}
    for minute, frame_id in frames:
        since_epoch = (minute.astimezone(UTC) - _EPOCH).total_seconds()
        start = _EPOCH + timedelta(seconds=since_epoch - since_epoch % step)
        groups.setdefault(start, []).append((minute, frame_id))
    return [Partition(start, tuple(items)) for start, items in sorted(groups.items())]
