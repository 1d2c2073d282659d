"""The frames a minute could be made from: downloaded, decoded and gated, each with its reasons.

A :class:`Candidate` is one site's frame of one minute, as far as it got. Nothing here
raises for a bad frame: every failure becomes a reason on the candidate (the vocabulary's
:class:`~service.vocabulary.Reason`), so one bad frame never costs a minute that has a good
one. :func:`archived_candidate` is the one way back from a raw frame archived earlier
(the feed's repairs and the backfill).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from service.errors import FatalError, FrameRejected, RetryableError, SkipError
from service.settings import Settings
from service.sources.base import Download, FrameSource, RemoteFrame
from service.storage import ObjectNotFound, ObjectStore, sha256_hex
from service.vocabulary import Reason, Stage

__all__ = ["Candidate", "archived_candidate", "decode_and_gate", "gate_thresholds", "gather", "minute_budget"]


@dataclass
class Candidate:
    """One site's frame of a minute, as far as it got through download, decode and gate."""

    remote: RemoteFrame
    download: Download | None = None
    frame: Any = None  # service.science.frame.HalphaFrame once decoded
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

    def quality_record(self) -> dict[str, Any]:
        """The gate's score and reasons and the frame's quality measures, JSON-ready."""
        verdict = self.verdict
        measures = getattr(self.frame, "quality", {}) or {}
        return {
            "score": float(verdict.score) if verdict is not None else None,
            "reasons": [str(r) for r in getattr(verdict, "reasons", []) or []],
            "header": {k: v for k, v in measures.items() if v is None or isinstance(v, (int, float, str))},
        }


def gate_thresholds(settings: Settings) -> Any:
    """The quality gate's thresholds from settings (``service.science.quality``)."""
    from service.science import quality

    return quality.Thresholds.from_settings(settings)


def minute_budget(settings: Settings) -> float:
    """Seconds a minute may spend on the network before it is left for a later tick."""
    return max(60.0, 4 * settings.http_timeout_s)


def gather(sources: dict[str, FrameSource], frames: list[RemoteFrame], settings: Settings) -> list[Candidate]:
    """Download, decode and gate each listed frame of a minute (from its own source)."""
    thresholds = gate_thresholds(settings)
    deadline = time.monotonic() + minute_budget(settings)
    candidates = []
    for remote in frames:
        candidate = Candidate(remote=remote)
        candidates.append(candidate)
        t0 = time.perf_counter()
        try:
            candidate.download = sources[remote.source].download(remote, deadline)
        except SkipError as exc:
            candidate.reject(Reason.DOWNLOAD_FAILED, f"not found: {exc}")
            candidate.reasons.append(Reason.NOT_FOUND)
            continue
        except (RetryableError, FatalError) as exc:
            candidate.reject(Reason.DOWNLOAD_FAILED, str(exc))
            continue
        finally:
            candidate.timings[Stage.DOWNLOAD] = time.perf_counter() - t0
        decode_and_gate(candidate, sources[remote.source], thresholds)
    return candidates


def decode_and_gate(candidate: Candidate, source: FrameSource, thresholds: Any) -> None:
    """Decode a downloaded candidate with its source's reader and score it with the gate.

    A frame that cannot be read, names another site inside than its file name does, or
    fails the gate gets its reasons (``candidate.reject``); nothing is raised.
    """
    from service.science.quality import gate

    assert candidate.download is not None
    remote = candidate.remote
    t0 = time.perf_counter()
    try:
        candidate.frame = source.read(candidate.download.data, remote.name)
    except FrameRejected as exc:
        candidate.reject(exc.reason, exc.detail)
        return
    finally:
        candidate.timings[Stage.DECODE] = time.perf_counter() - t0
    if candidate.frame.site != remote.site:
        candidate.reject(Reason.ABSURD_HEADER, f"site {candidate.frame.site} does not match {remote.name}")
        return
    t0 = time.perf_counter()
    candidate.verdict = gate(candidate.frame, thresholds)
    candidate.timings[Stage.GATE] = time.perf_counter() - t0
    if not candidate.verdict.accepted:
        for reason in candidate.verdict.reasons or [Reason.OTHER]:
            candidate.reject(reason, "quality gate")


def archived_candidate(
    store: ObjectStore, source: FrameSource, filename: str, sha256: str, raw_uri: str | None
) -> Candidate:
    """A candidate made of the raw frame archived at ``raw_uri`` (not yet decoded).

    Raises :class:`~service.errors.FatalError` when the object is missing or its bytes
    are not the ones recorded at download (``sha256``): a product is never made from them.
    """
    try:
        raw = store.get(store.key_for(raw_uri)) if raw_uri else None
    except ObjectNotFound:
        raw = None
    if raw is None or sha256_hex(raw) != sha256:
        why = "missing" if raw is None else "sha256 differs from the one recorded at download"
        raise FatalError(f"raw input {filename} is not archived intact ({why})")
    remote = source.remote(filename)
    if remote is None:  # the name was parsed from this source's listing when it was fetched
        raise FatalError(f"raw input {filename} is not a {source.name} frame name")
    return Candidate(remote=remote, download=Download(remote, raw, sha256, 0.0))
