"""Chronological train / val / test with at least one solar rotation between them.

An active region lives for weeks and comes back every synodic rotation (27.3 days); days
close in time share regions. So the splits are cut in time order, with ``gap_days`` (27 by
default) dropped after each cut: the last day of one split and the first of the next are at
least that far apart, and no region is seen in two splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

__all__ = ["FRACTIONS", "GAP_DAYS", "assign", "check_gaps"]

GAP_DAYS = 27.0  # one synodic solar rotation
FRACTIONS = (0.6, 0.2, 0.2)
NAMES = ("train", "val", "test")


def _days(times: Sequence[datetime]) -> np.ndarray:
    return np.array([t.timestamp() / 86400.0 for t in times])


def assign(times: Sequence[datetime], fractions: tuple[float, float, float] = FRACTIONS,
           gap_days: float = GAP_DAYS) -> list[str | None]:
    """The split of each time (``train``, ``val``, ``test``, or None: dropped in a gap).

    The cuts sit at the given fractions of the span less the two gaps; times within
    ``gap_days`` after a cut are dropped.

    Raises
    ------
    ValueError
        When the span cannot hold three splits and two gaps.
    """
    if not times:
        return []
    t = _days(times)
    lo, hi = float(t.min()), float(t.max())
    usable = hi - lo - 2 * gap_days
    if usable <= 0:
        raise ValueError(f"{hi - lo:.0f} days of data cannot hold train, val and test with {gap_days:g}-day "
                         "gaps: build a longer span (more than two solar rotations)")
    f = np.asarray(fractions, dtype=float) / sum(fractions)
    cut1 = lo + f[0] * usable
    cut2 = cut1 + gap_days + f[1] * usable
    out: list[str | None] = []
    for x in t:
        if x <= cut1:
            out.append("train")
        elif cut1 + gap_days < x <= cut2:
            out.append("val")
        elif x > cut2 + gap_days:
            out.append("test")
        else:
            out.append(None)
    return out


def check_gaps(split: dict[str, Sequence[datetime]], gap_days: float = GAP_DAYS) -> None:
    """Raise ``ValueError`` unless every split precedes the next by at least ``gap_days``."""
    present = [(name, _days(split[name])) for name in NAMES if len(split.get(name, ()))]
    for (a, ta), (b, tb) in zip(present, present[1:], strict=False):
        gap = float(tb.min() - ta.max())
        if gap < gap_days:
            raise ValueError(f"{a} ends {gap:.1f} days before {b} starts (< {gap_days:g})")
