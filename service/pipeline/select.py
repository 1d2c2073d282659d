"""One frame per observation minute.

Several GONG sites often observe the same minute (seconds apart). A product is
made per observation minute, from the frame the quality gate scores best; the
others keep a recorded reason (``not_selected``, or why they were unusable).
Frames are always identified by time *and* site: two sites' frames of one
minute are different inputs, never merged on their timestamp.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from service.pipeline.candidates import Candidate
from service.sources.base import RemoteFrame
from service.vocabulary import Reason


@dataclass
class Selection:
    """The chosen frame of a minute (if any) and every other frame with its reasons."""

    chosen: Candidate | None
    rejected: list[Candidate]


def group_by_minute(frames: list[RemoteFrame]) -> dict[datetime, list[RemoteFrame]]:
    """Listed frames grouped by observation minute; within a minute, one entry per (time, source, site)."""
    groups: dict[datetime, dict[tuple[datetime, str, str], RemoteFrame]] = defaultdict(dict)
    for frame in frames:
        groups[frame.minute][(frame.obs_time, frame.source, frame.site)] = frame
    return {
        minute: sorted(by_key.values(), key=lambda f: (f.obs_time, f.source, f.site))
        for minute, by_key in groups.items()
    }


def choose(candidates: list[Candidate]) -> Selection:
    """Pick the usable candidate with the best gate score.

    Ties go to the earlier observation, then the source and site, so the choice is
    deterministic (a rerun picks the same frame). Usable candidates that lose
    get the reason ``not_selected``; unusable ones keep their own reasons.
    """
    usable = [c for c in candidates if c.usable]
    chosen = None
    if usable:
        chosen = min(usable, key=lambda c: (-c.score, c.remote.obs_time, c.remote.source, c.remote.site))
    rejected = []
    for candidate in candidates:
        if candidate is chosen:
            continue
        if candidate.usable:
            candidate.reject(
                Reason.NOT_SELECTED,
                f"gate score {candidate.score:.3f} < {chosen.score:.3f} ({chosen.remote.name})",  # type: ignore[union-attr]
            )
        elif not candidate.reasons:  # gated out without a reason given: still say why
            candidate.reject(Reason.OTHER, "not accepted by the quality gate")
        rejected.append(candidate)
    return Selection(chosen=chosen, rejected=rejected)
