"""The six GONG H-alpha stations, written once: header code, file-name letter, location."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SITES", "Site", "site_by_code", "site_by_letter"]


@dataclass(frozen=True)
class Site:
    """One GONG H-alpha station."""

    code: str  # SITENAME header value
    letter: str  # letter in the file name
    name: str
    lat_deg: float
    lon_deg: float  # east positive


# Coordinates are approximate (0.01 deg) and used only when a header lacks SITE-LAT/SITE-LON;
# Big Bear's are the sunpy sample header's.
SITES: tuple[Site, ...] = (
    Site("BB", "B", "Big Bear, USA", 34.2603, -116.9214),
    Site("CT", "C", "Cerro Tololo, Chile", -30.1697, -70.8065),
    Site("LE", "L", "Learmonth, Australia", -22.2192, 114.1031),
    Site("ML", "M", "Mauna Loa, USA", 19.5362, -155.5763),
    Site("TD", "T", "El Teide, Spain", 28.3003, -16.5122),
    Site("UD", "U", "Udaipur, India", 24.6252, 73.6706),
)
_BY_CODE = {s.code: s for s in SITES}
_BY_LETTER = {s.letter: s for s in SITES}


def site_by_code(code: str) -> Site | None:
    """The station with ``SITENAME`` ``code`` (e.g. ``"BB"``), or None."""
    return _BY_CODE.get(str(code).strip().upper())


def site_by_letter(letter: str) -> Site | None:
    """The station with file-name letter ``letter`` (e.g. ``"B"``), or None."""
    return _BY_LETTER.get(str(letter).strip().upper())
