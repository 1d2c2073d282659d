"""One frame per observation minute.

Several GONG sites often observe the same minute (seconds apart). A product is
made per observation minute, from the frame the quality gate scores best; the
others keep a recorded reason (``not_selected``, or why they were unusable).
Frames are always identified by time *and* site: two sites' frames of one
minute are different inputs, never merged on their timestamp.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.pipeline.source import Download, RemoteFrame


@dataclass
class Candidate:
    """One site's frame of a minute, as far as it got through download, decode and gate."""

    remote: RemoteFrame
    download: Download | None = None
    frame: Any = None  # service.science.gong.GongFrame once decoded
    verdict: Any = None  # service.science.quality.Verdict once gated
    reasons: list[str] = field(default_factory=list)  # why it cannot be used
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return (
            not self.reasons
            and self.frame is not None
            and self.verdict is not None
            and bool(self.verdict.accepted)
        )

    @property
    def score(self) -> float:
        return float(self.verdict.score) if self.verdict is not None else float("-inf")

    def reject(self, reason: str, detail: str = "") -> None:
        self.reasons.append(reason)
        if detail:
            self.detail = f"{self.detail}; {detail}" if self.detail else detail


@dataclass
class Selection:
    """The chosen frame of a minute (if any) and every other frame with its reasons."""

    chosen: Candidate | None
    rejected: list[Candidate]


def group_by_minute(frames: list[RemoteFrame]) -> dict[datetime, list[RemoteFrame]]:
    """Listed frames grouped by observation minute; within a minute, one entry per (time, site)."""
    groups: dict[datetime, dict[tuple[datetime, str], RemoteFrame]] = defaultdict(dict)
    for frame in frames:
        groups[frame.minute][(frame.obs_time, frame.site_letter)] = frame
    return {
        minute: sorted(by_key.values(), key=lambda f: (f.obs_time, f.site_letter))
        for minute, by_key in groups.items()
    }


def choose(candidates: list[Candidate]) -> Selection:
    """Pick the usable candidate with the best gate score.

    Ties go to the earlier observation, then the site letter, so the choice is
    deterministic (a rerun picks the same frame). Usable candidates that lose
    get the reason ``not_selected``; unusable ones keep their own reasons.
    """
    usable = [c for c in candidates if c.usable]
    chosen = None
    if usable:
        chosen = min(usable, key=lambda c: (-c.score, c.remote.obs_time, c.remote.site_letter))
    rejected = []
    for candidate in candidates:
        if candidate is chosen:
            continue
        if candidate.usable:
            candidate.reject(
                "not_selected",
                f"gate score {candidate.score:.3f} < {chosen.score:.3f} ({chosen.remote.name})",  # type: ignore[union-attr]
            )
        elif not candidate.reasons:  # gated out without a reason given: still say why
            candidate.reject("other", "not accepted by the quality gate")
        rejected.append(candidate)
    return Selection(chosen=chosen, rejected=rejected)
