"""The NSO archive's layout and file-name grammar, written once.

::

    {base}/HA/haf/YYYYMM/YYYYMMDD/YYYYMMDDhhmmss{S}h.fits.fz

with ``S`` the station's letter (:mod:`.sites`). One Apache-style listing per UTC day
holds every station's frames.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from service.sources.gong.sites import Site, site_by_letter

__all__ = ["FRAME_NAME", "day_path", "frame_name", "parse_name"]

FRAME_NAME = re.compile(r"^(?P<stamp>\d{14})(?P<letter>[A-Z])h\.fits(?:\.fz)?$")


def day_path(day: date) -> str:
    """Archive path of one UTC day's directory, without the base URL."""
    return f"HA/haf/{day:%Y%m}/{day:%Y%m%d}/"


def frame_name(obs_time: datetime, site: Site) -> str:
    """File name of the frame ``site`` observed at ``obs_time`` (UTC)."""
    return f"{obs_time:%Y%m%d%H%M%S}{site.letter}h.fits.fz"


def parse_name(name: str) -> tuple[datetime, Site] | None:
    """``YYYYMMDDhhmmss{S}h.fits[.fz]`` -> (aware UTC time, station), or None if not a frame name."""
    match = FRAME_NAME.match(name)
    if match is None:
        return None
    site = site_by_letter(match["letter"])
    if site is None:
        return None
    try:
        obs_time = datetime.strptime(match["stamp"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:  # 14 digits but not a date (e.g. month 13)
        return None
    return obs_time, site
