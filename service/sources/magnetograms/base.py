"""Real magnetograms (HMI line of sight), from wherever they come: one interface.

Three features stand on it: verification scores each product against the real
magnetogram of its minute (:meth:`MagnetogramSource.nearest`) with persistence beside it,
the nowcast's prior is the newest usable magnetogram before a frame
(:meth:`MagnetogramSource.newest_before`), and the dataset builder pairs frames with
HMI. A :class:`Magnetogram` is either already in the model frame (``in_model_frame``:
the Ha2Mag dataset's files) or an image with its WCS and observer keywords;
:func:`service.verification.prep.to_model_frame` brings either into the model frame at
its own time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from service.errors import SynmagError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from service.settings import Settings

__all__ = ["TRUTH_MAX_OFFSET", "Magnetogram", "MagnetogramRejected", "MagnetogramSource", "Unusable"]

# A 720 s magnetogram integrates +-6 min around its time: the truth of a minute is the
# nearest usable one within this (the dataset's HMI is of its GONG frame's minute).
TRUTH_MAX_OFFSET = timedelta(minutes=6)


class Unusable(StrEnum):
    """Why a magnetogram file or record cannot be used (the reason of :class:`MagnetogramRejected`)."""

    UNREADABLE = "unreadable"  # not a FITS / image file, or no 2-D image in it
    QUALITY = "quality"  # QUALITY != 0 (or missing, or not parseable)
    NO_TIME = "no_time"  # no T_OBS / DATE-OBS that parses (JSOC says MISSING)
    NO_WCS = "no_wcs"  # no helioprojective WCS (a raw JSOC segment carries none)
    BAD_WCS = "bad_wcs"  # a WCS that is not a plain north-rotated, square-pixel TAN image
    BAD_UNITS = "bad_units"  # BUNIT not a magnetic flux density (G, Mx/cm^2)


class MagnetogramRejected(SynmagError):
    """A magnetogram that cannot be used; ``reason`` is an :class:`Unusable`."""

    def __init__(self, reason: Unusable, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


def aware_utc(t: datetime) -> datetime:
    """``t`` as an aware UTC datetime (a naive one is refused: times are never guessed)."""
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: pass an aware UTC time")
    return t.astimezone(UTC)


@dataclass(eq=False)
class Magnetogram:
    """A line-of-sight magnetogram in Gauss, with where and when it came from.

    Attributes
    ----------
    data : numpy.ndarray
        float32 Gauss, FITS row order (row 0 = the bottom of the image as its WCS
        says), NaN where there is no data. In the model frame when ``in_model_frame``.
    obs_time : datetime
        Observation time, aware UTC (HMI: ``T_OBS``, the middle of the 720 s).
    sha256 : str
        sha256 of the file it was read from (provenance; a JSOC segment as downloaded).
    origin : str
        The series (``hmi.M_720s_nrt``) or the file name it came from.
    header : mapping or None
        FITS keywords: helioprojective WCS and observer (``CRPIX``, ``CDELT``,
        ``CROTA2`` or ``PC``, ``RSUN_OBS``, ``DSUN_OBS``...). None when ``in_model_frame``.
    in_model_frame : bool
        Already in the model frame (the dataset's files): 1024x1024, north up, disk
        at ``MODEL_CENTER`` with ``MODEL_RADIUS_PX``.
    meta : dict
        JSON-ready description (source, series, T_REC, QUALITY, file, url).
    """

    data: np.ndarray
    obs_time: datetime
    sha256: str
    origin: str
    header: Mapping[str, Any] | None = None
    in_model_frame: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 2:
            raise ValueError(f"a magnetogram is a 2-D image, got shape {self.data.shape}")
        self.obs_time = aware_utc(self.obs_time)
        if not self.in_model_frame and self.header is None:
            raise ValueError("a magnetogram outside the model frame needs its header (WCS)")

    def describe(self) -> dict[str, Any]:
        """JSON-ready provenance: meta plus time, origin and sha256."""
        return {**self.meta, "origin": self.origin, "obs_time": self.obs_time.isoformat(),
                "sha256": self.sha256}


class MagnetogramSource(ABC):
    """Finds real magnetograms. Subclasses set :attr:`name` and register themselves with
    :func:`service.sources.registry.magnetogram_source`.

    Both lookups return None when there is nothing usable (yet) and raise
    ``RetryableError`` for a transient failure of the source (``FatalError`` when it
    refuses the request itself).
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> MagnetogramSource:
        """The source configured by ``settings`` (``jsoc_url``, ``truth_dir``, ``truth_url``)."""

    @abstractmethod
    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        """The usable magnetogram nearest ``obs_time`` (aware UTC) within :data:`TRUTH_MAX_OFFSET`.

        ``input_file`` names the product's input frame, for sources that pair by file.
        """

    @abstractmethod
    def newest_before(self, t: datetime, min_age: timedelta, max_age: timedelta) -> Magnetogram | None:
        """The newest usable magnetogram observed in ``[t - max_age, t - min_age]``.

        The nowcast's prior and the persistence baseline. Called once a minute by the
        feed: a source lists and fetches each record once, not once per call.
        """

    def abort(self) -> None:  # noqa: B027 - optional hook, a local source has nothing to retry
        """Stop retrying: a backoff in progress ends now (the service is stopping)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release connections (default: nothing to release)."""

    def __enter__(self) -> MagnetogramSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def age_window(t: datetime, min_age: timedelta, max_age: timedelta) -> tuple[datetime, datetime]:
    """``(t - max_age, t - min_age)``, checked (ages >= 0, min <= max)."""
    t = aware_utc(t)
    if min_age < timedelta(0) or max_age < min_age:
        raise ValueError(f"need 0 <= min_age <= max_age, got {min_age} and {max_age}")
    return t - max_age, t - min_age
