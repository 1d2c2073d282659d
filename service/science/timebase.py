"""One offline time policy for every synmag process: astropy never downloads, never refuses.

Every coordinate the service computes (the GONG station as observer, the solar P, B0
and L0 angles, Earth's position, differential rotation) goes through astropy's
Earth-orientation tables (IERS). By default astropy wants a fresh IERS-A table: once
the bundled one (``astropy-iers-data``) is more than 30 days old, ``IERS_Auto``
downloads a new one or, offline, raises ``ValueError: interpolating from IERS_Auto
using predictive values that are more than 30.0 days old``, whatever
``auto_download`` says (``auto_max_age`` decides). A service stopping 30 days after
its last ``pip install`` is the worst kind of outage, so :func:`apply` sets, once per
process (on import of :mod:`service.science`):

``auto_download = False``
    the bundled tables only; no network request from the service;
``auto_max_age = None``
    old predictions are used instead of refused;
``iers_degraded_accuracy = "ignore"``
    times past the table are served from its last values.

And past the table's end (about a year after the package was built) astropy warns
that polar motion falls back to its 50-year mean: :data:`TOLERATED_WARNINGS`, ignored
here and in the test suite's warning filters (``tests/conftest.py``), so nothing else
is silenced.

What it costs. UT1-UTC predictions drift by at most tens of milliseconds over a year
and polar motion by under 0.3"; both move the ground station (and so the observer) by
well under a kilometre: 1e-3 arcsec seen from the Sun, about 1e-6 of a GONG pixel
(1.08"). The solar angles P, B0, L0 do not depend on Earth orientation at all beyond
that. Leap seconds come from the bundled table too; a new one would be announced six
months ahead and shift times by 1 s, again far below what a 1-minute product resolves.
"""

from __future__ import annotations

import warnings

__all__ = ["TOLERATED_WARNINGS", "apply"]

# (message regex, category name) of the warnings the policy accepts; nothing else.
TOLERATED_WARNINGS: tuple[tuple[str, str], ...] = (
    (r"Tried to get polar motions for times after IERS data is valid", "AstropyWarning"),
)

_applied = False


def apply() -> None:
    """Set the offline policy for this process (idempotent; cheap after the first call)."""
    global _applied
    if _applied:
        return
    from astropy.utils import exceptions, iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "ignore"
    for message, category in TOLERATED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=getattr(exceptions, category))
    _applied = True
