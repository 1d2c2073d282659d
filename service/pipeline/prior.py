"""The nowcast's prior for a frame: the newest usable magnetogram, in the model frame, rotated to it.

``PriorFinder(source, min_age, max_age).find(obs_time)`` is the one lookup the feed, ``synmag
process --prior-dir`` and ``reprocess`` share. It returns a
:class:`~service.science.prior.PriorMap` or, when there is none, the reason, which the
product records (``PRIORWHY``) as it falls back to the H-alpha-only model. A source that
is down (``RetryableError``) never stalls the minute: the minute is served without a
prior and says so, and the source's own capped backoff decides when it is asked again.

The magnetogram source caches what it fetched (JSOC: each 12-minute record once), and the
model-frame image is cached by sha256 (``to_model_frame``); the rotation to the frame's
minute (about 0.3 s) is done per frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from service.errors import RetryableError

if TYPE_CHECKING:
    from service.science.prior import PriorMap
    from service.settings import Settings
    from service.sources.magnetograms.base import MagnetogramSource

log = logging.getLogger(__name__)


@dataclass
class PriorFinder:
    """Finds the prior of a frame in ``source`` between ``min_age`` and ``max_age`` before it."""

    source: MagnetogramSource | None
    min_age: timedelta = timedelta(0)
    max_age: timedelta = timedelta(hours=168)

    @classmethod
    def from_settings(cls, settings: Settings) -> PriorFinder:
        """``SYNMAG_PRIOR_SOURCE`` (none: a finder that always says so) and the age window."""
        return cls(open_prior_source(settings), timedelta(hours=settings.prior_min_age_h),
                   timedelta(hours=settings.prior_max_age_h))

    def find(self, obs_time: datetime) -> tuple[PriorMap | None, str | None]:
        """``(prior, None)``, or ``(None, why there is none)``, for a frame observed at ``obs_time``."""
        from astropy.time import Time

        from service.science.metrics import DiskGeometry
        from service.science.preprocess import MODEL_CENTER, MODEL_RADIUS_PX
        from service.science.prior import prior_map
        from service.sources.magnetograms.base import MagnetogramRejected
        from service.verification.prep import to_model_frame

        if self.source is None:
            return None, "no prior source configured (SYNMAG_PRIOR_SOURCE=none)"
        obs_time = obs_time.astimezone(UTC)
        window = (f"{self.min_age.total_seconds() / 3600:g}-{self.max_age.total_seconds() / 3600:g} h")
        try:
            m = self.source.newest_before(obs_time, self.min_age, self.max_age)
        except RetryableError as exc:
            log.warning("prior source %s unavailable, serving without a prior: %s", self.source.name, exc)
            return None, f"prior source {self.source.name} unavailable: {exc}"
        if m is None:
            return None, f"no usable magnetogram from {self.source.name} observed {window} before the frame"
        try:
            gauss, geometry = to_model_frame(m)
        except MagnetogramRejected as exc:
            return None, f"prior {m.origin} {m.obs_time.isoformat()} unusable: {exc}"
        target = DiskGeometry(MODEL_CENTER, MODEL_RADIUS_PX)
        prior = prior_map(gauss, Time(m.obs_time.replace(tzinfo=None), scale="utc"),
                          Time(obs_time.replace(tzinfo=None), scale="utc"), target,
                          prior_geometry=geometry, provenance=m.describe())
        return prior, None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def abort(self) -> None:
        if self.source is not None:
            self.source.abort()


def open_prior_source(settings: Settings) -> MagnetogramSource | None:
    """The prior's magnetogram source: ``SYNMAG_PRIOR_SOURCE`` with ``SYNMAG_PRIOR_DIR``/``_URL``.

    The sources read their folder and URL from the truth settings; the prior's own, when
    given, take their place, so truth and prior may be different folders of one kind.
    """
    from service.sources.registry import open_magnetogram_source

    if settings.prior_source == "none":
        return None
    own = settings.model_copy(update={"truth_dir": settings.prior_dir or settings.truth_dir,
                                      "truth_url": settings.prior_url or settings.truth_url})
    return open_magnetogram_source(own, settings.prior_source)
