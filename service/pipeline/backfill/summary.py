"""What a backfill reports: counts by outcome and the minutes that got no product, with why.

A partition's task returns a :class:`PartitionSummary`: a few hundred bytes, whatever the
size of the products it made. :class:`BackfillSummary` adds them up on the client, with the
partitions whose task itself failed (every minute of theirs counted ``failed``, with the
task's error as reason).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from service.pipeline.minute import MinuteOutcome
from service.vocabulary import Outcome

# Outcomes that leave a product of the version for the minute.
DONE = (Outcome.PRODUCT, Outcome.REPAIRED)


@dataclass
class PartitionSummary:
    """One partition's outcomes: counts, and (minute, outcome, detail) of those without a product."""

    start: datetime
    worker: str = ""
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, out: MinuteOutcome) -> None:
        self.counts[str(out.outcome)] += 1
        if not Outcome(out.outcome).made_product:
            self.problems.append((out.minute.strftime("%Y-%m-%dT%H:%MZ"), str(out.outcome), out.detail))


@dataclass
class BackfillSummary:
    """The whole backfill: outcomes of every minute, by partition results and failed tasks."""

    version: str
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    worker_seconds: float = 0.0
    workers: set[str] = field(default_factory=set)

    def add(self, part: PartitionSummary) -> None:
        self.counts.update(part.counts)
        self.problems.extend(part.problems)
        self.worker_seconds += part.seconds
        self.workers.add(part.worker)

    def add_failed_task(self, start: datetime, minutes: int, error: str) -> None:
        """A partition whose task raised (or whose workers kept dying): its minutes failed."""
        self.counts[str(Outcome.FAILED)] += minutes
        self.problems.append((start.strftime("%Y-%m-%dT%H:%MZ"), "failed", f"partition of {minutes} minutes: {error}"))

    @property
    def minutes(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Minutes whose product was made (or adopted) by this run."""
        return sum(self.counts[str(o)] for o in DONE)

    @property
    def failed(self) -> int:
        return self.counts[str(Outcome.FAILED)]

    def line(self) -> str:
        """``reprocessed N minutes with V: a exists, b product, ...`` (as the in-process path says)."""
        counted = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        return f"reprocessed {self.minutes} minutes with {self.version}: {counted or 'nothing in range'}"

    def problem_lines(self) -> list[str]:
        """One JSON line per minute (or failed partition) without a product, oldest first."""
        return [json.dumps({"minute": m, "outcome": o, "detail": d or None}, separators=(",", ":"))
                for m, o, d in sorted(self.problems)]
