"""Real magnetograms (HMI line of sight), from wherever they come: one interface.

Verification scores each product against the real magnetogram of its minute
(:meth:`MagnetogramSource.nearest`); the same sources will serve the nowcast's prior.
A :class:`Magnetogram` is either already on the product's grid (``in_model_frame``: the
Ha2Mag dataset's files) or a FITS image with its WCS and observer keywords, brought onto
the product's grid by :func:`service.verification.prep.prep_to_frame`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["Magnetogram", "MagnetogramSource"]


@dataclass
class Magnetogram:
    """A line-of-sight magnetogram in Gauss.

    Attributes
    ----------
    data : numpy.ndarray
        float32 Gauss. In FITS row order with ``header`` when ``in_model_frame`` is
        False; in the model frame (like the dataset) when True.
    header : dict or None
        FITS keywords (WCS, observer) when not in the model frame.
    in_model_frame : bool
        Already on the product's grid (dataset files): prep is skipped.
    meta : dict
        JSON-ready description (source, series, T_REC, T_OBS, QUALITY, file).
    """

    data: np.ndarray
    header: dict[str, Any] | None
    in_model_frame: bool
    meta: dict[str, Any] = field(default_factory=dict)


class MagnetogramSource(ABC):
    """Finds real magnetograms. Subclasses set :attr:`name` and register themselves with
    :func:`service.sources.registry.magnetogram_source`."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> MagnetogramSource:
        """The source configured by ``settings`` (``truth_dir``, ``truth_url``)."""

    @abstractmethod
    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        """The magnetogram of ``obs_time`` (aware UTC), or None when there is none (yet).

        ``input_file`` names the product's input frame, for sources that pair by file.
        Raises ``RetryableError`` for a transient failure of the source.
        """
