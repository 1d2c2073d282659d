"""service.science.cycles: which solar cycle a time is in, and the sign of Hale's law."""

from __future__ import annotations

from datetime import datetime

import pytest
from astropy.time import Time

from service.science.cycles import cycle_of, cycle_of_days, polarity_sign


@pytest.mark.parametrize(("time", "cycle"), [
    ("2014-03-19T00:00:54", 24),  # the Ha2Mag val split
    ("2008-11-30", 23),
    ("2008-12-01", 24),
    ("2019-11-30T23:59:59", 24),
    ("2019-12-01", 25),
    (datetime(2026, 11, 21, 12), 25),
    (Time("1996-08-15"), 23),
])
def test_cycle_of(time, cycle: int) -> None:
    assert cycle_of(time) == cycle


@pytest.mark.parametrize("time", ["1985-01-01", "yesterday"])
def test_cycle_of_refuses_what_it_cannot_place(time: str) -> None:
    with pytest.raises(ValueError):
        cycle_of(time)


@pytest.mark.parametrize(("time", "model_cycle", "sign"), [
    ("2014-08-05", 24, 1),   # the test split: the model's own cycle
    ("2026-11-21", 24, -1),  # today, with a cycle-24 model: Hale's law reversed
    ("2026-11-21", 25, 1),
    ("2040-01-01", 24, -1),  # beyond the last known start: still 25 until the table grows
])
def test_polarity_sign(time: str, model_cycle: int, sign: int) -> None:
    assert polarity_sign(time, model_cycle) == sign


def test_training_days_of_one_cycle() -> None:
    assert cycle_of_days(["2013-01-04T00:00:34", "2014-03-18T00:00:34"]) == 24


@pytest.mark.parametrize("days", [["2019-06-01", "2020-06-01"], []])
def test_training_days_across_a_minimum_or_none_are_refused(days: list[str]) -> None:
    with pytest.raises(ValueError, match="solar cycles|no training days"):
        cycle_of_days(days)
