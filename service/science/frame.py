"""A full-disk H-alpha frame as the science core sees it, whatever network observed it.

A frame source (:mod:`service.sources`) reads its own files into a :class:`HalphaFrame`:
pixels in FITS row order (row 0 = solar south), the disk's geometry, the observer, and
the quality measures the gate (:mod:`service.science.quality`) uses under the generic
names of :data:`QUALITY_MEASURES`. Everything downstream (gate, preprocessing, products)
reads this class only, so a second H-alpha network is a new reader, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.time import Time

__all__ = ["QUALITY_MEASURES", "HalphaFrame", "observer_at"]

QUALITY_MEASURES = (
    "sharpness",  # image sharpness, higher is better (GONG SHARPNSS, 0..1)
    "sky_brightness",  # sky level in counts (GONG SKYBRITE); compared to the disk median
    "error_code",  # instrument error code, 0 = none (GONG HAERRCOD)
    "eclipse",  # a truthy value: the frame is eclipsed (GONG ECLIPSE)
    "limb_points",  # how many points the limb fit used (GONG LIMBPTCT)
)
"""Generic names of the quality measures a reader may fill (None = not known: no check)."""


@dataclass
class HalphaFrame:
    """An H-alpha full-disk frame with its geometry and metadata, units attached.

    Attributes
    ----------
    data : numpy.ndarray
        float32 counts, ``data[y, x]``, FITS row order, solar north up.
    header : astropy.io.fits.Header
        The image header as read.
    obs_time : astropy.time.Time
        Observation time (UTC).
    source : str
        The frame source's registered name (e.g. ``"gong"``).
    site : str
        The station's code within its network (e.g. ``"BB"``).
    center_px : tuple of float
        Disk centre (x, y), 0-based pixels.
    radius_px : float
        Disk radius in pixels; ``radius_minmax_px`` the fitted limb's minor and major radii.
    rsun_arcsec, p_angle, b0, l0 : astropy.units.Quantity
        Apparent solar radius (arcsec), P, B0 and L0 angles (deg).
    site_lat, site_lon : astropy.units.Quantity
        Station location (deg, east positive).
    generation : str
        The header generation the reader found (source-specific, for the record).
    filename : str or None
    quality : dict
        The measures of :data:`QUALITY_MEASURES` the source knows (None where it does not).
    expected_shape : tuple of int
        The image shape this source's frames have (the gate checks it).
    """

    data: np.ndarray
    header: Any
    obs_time: Time
    source: str
    site: str
    center_px: tuple[float, float]
    radius_px: float
    radius_minmax_px: tuple[float, float]
    rsun_arcsec: u.Quantity
    p_angle: u.Quantity
    b0: u.Quantity
    l0: u.Quantity
    site_lat: u.Quantity
    site_lon: u.Quantity
    generation: str
    filename: str | None
    expected_shape: tuple[int, int]
    quality: dict[str, float | int | None] = field(default_factory=dict)
    _observer: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def arcsec_per_px(self) -> u.Quantity:
        """Plate scale, ``rsun_arcsec / radius`` (arcsec / pixel)."""
        return self.rsun_arcsec / (self.radius_px * u.pix)

    def observer(self) -> Any:
        """Observer location (HeliographicStonyhurst ``SkyCoord``) at ``obs_time``, cached."""
        if self._observer is None:
            self._observer = observer_at(self.obs_time, self.site_lat, self.site_lon)
        return self._observer

    def observer_params(self) -> dict[str, float]:
        """``dsun_m``, ``hgln_deg``, ``hglt_deg`` of :attr:`observer` as floats."""
        obs = self.observer()
        return {
            "dsun_m": float(obs.radius.to_value(u.m)),
            "hgln_deg": float(obs.lon.to_value(u.deg)),
            "hglt_deg": float(obs.lat.to_value(u.deg)),
        }


def observer_at(obs_time: Time, lat: u.Quantity, lon: u.Quantity) -> Any:
    """HeliographicStonyhurst position of a ground station at ``obs_time`` (height 0).

    As sunpy's ``GONGHalphaMap.observer_coordinate`` computes it. Earth orientation comes
    from the bundled IERS tables under the process's offline policy
    (:mod:`service.science.timebase`): no download, no refusal, error < 1 km.
    """
    import sunpy.coordinates  # noqa: F401  (registers the heliographic frames)
    from astropy.coordinates import EarthLocation, SkyCoord

    loc = EarthLocation.from_geodetic(lat=lat, lon=lon)
    return SkyCoord(loc.get_itrs(obs_time)).heliographic_stonyhurst
