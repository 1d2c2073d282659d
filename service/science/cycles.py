"""Solar cycles, and the sign that carries a model's polarity into another cycle.

H-alpha carries no polarity: a generator assigns signs from what it learned of Hale's law
(leading spots of one polarity in the north, the opposite in the south) on its training
days. Hale's law reverses from one cycle to the next, and the field of the next cycle's
Sun is, statistically, the whole field negated (Joy's tilt and the regions' shapes are
unchanged). So a model that learned cycle N is right on frames of cycle N, N+2, ..., and
exactly reversed on frames of N+1, N+3, ...: :func:`polarity_sign` is the factor that
makes its output follow the frame's cycle. The Ha2Mag data are cycle 24 (2013-2014); the
Sun of 2020 on is cycle 25.

Near a minimum the old cycle's last regions (low latitudes) and the new cycle's first
(high latitudes) share the disk for a year or two; the date rule below gives the old
ones the wrong sign there. The products record the sign used (``POLSIGN``), so the raw
model output is always ``POLSIGN`` x the product.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

# Start of each cycle: the month of the minimum of the 13-month smoothed sunspot number
# (SILSO, Royal Observatory of Belgium). Add the next one when SILSO announces it.
CYCLE_STARTS: tuple[tuple[int, tuple[int, int]], ...] = (
    (22, (1986, 9)),
    (23, (1996, 8)),
    (24, (2008, 12)),
    (25, (2019, 12)),
)


def _year_month(time: Any) -> tuple[int, int]:
    if isinstance(time, datetime):
        return time.year, time.month
    if hasattr(time, "utc"):  # astropy Time
        dt = time.utc.datetime
        return dt.year, dt.month
    text = str(time)
    try:
        return int(text[:4]), int(text[5:7])
    except ValueError:
        raise ValueError(f"not a time: {time!r}") from None


def cycle_of(time: Any) -> int:
    """The solar cycle a time falls in (a month from its start on).

    Parameters
    ----------
    time : datetime, astropy.time.Time or str
        A string must begin ``YYYY-MM`` (ISO).

    Raises
    ------
    ValueError
        Before the first cycle in :data:`CYCLE_STARTS`, or not a time.
    """
    ym = _year_month(time)
    cycle = None
    for number, start in CYCLE_STARTS:
        if ym >= start:
            cycle = number
    if cycle is None:
        raise ValueError(f"{time} is before cycle {CYCLE_STARTS[0][0]} ({CYCLE_STARTS[0][1]})")
    return cycle


def polarity_sign(obs_time: Any, model_cycle: int) -> int:
    """+1 where Hale's law of ``obs_time``'s cycle is ``model_cycle``'s, else -1."""
    return 1 if (cycle_of(obs_time) - int(model_cycle)) % 2 == 0 else -1


def cycle_of_days(times: Iterable[Any]) -> int:
    """The one cycle of a set of (training) days.

    Raises
    ------
    ValueError
        No days, or days of two cycles: a model trained across a minimum learned two
        polarity conventions, and no single sign carries it to another cycle.
    """
    cycles = sorted({cycle_of(t) for t in times})
    if len(cycles) != 1:
        raise ValueError(f"training days span solar cycles {cycles}: one polarity convention is needed"
                         if cycles else "no training days")
    return cycles[0]
