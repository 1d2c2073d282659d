"""Every metric synmag reports, defined once: name, label, unit, format, where it is used.

``service.science.metrics.score`` computes them; everything that shows, exports or
compares one reads this table: the live verification gauges
(``synmag_verification_score{metric}``), the promotion gate, the evaluation report and
model card, ``synmag metrics``, the feed API (``GET /v1/metric-table``, which the viewer
reads). Adding a metric is a row here whose ``compute`` is a function (in
``service.science.metrics``, or anywhere): nothing else changes. :func:`register`
adds one at run time (a plugin, or a test).

``key`` is the path into ``score()``'s result, dots for nested values (``ar_ppa.20`` is
``result["ar_ppa"]["20"]``); ``name`` is its flat spelling for labels and JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METRICS", "Metric", "by_name", "flat_scores", "gate_metrics", "live_metrics", "register", "unregister"]


@dataclass(frozen=True)
class Metric:
    """One metric of ``service.science.metrics.score``.

    Attributes
    ----------
    key : str
        Path into the ``score`` result, dot-separated for nested values.
    label : str
        What a person reads (tables, viewer, model card).
    unit : str
        ``""`` for dimensionless, else e.g. ``"dB"``.
    fmt : str
        Format spec of a value (``format(value, fmt)``).
    live : bool
        Exported per verified product as ``synmag_verification_score{metric=name}``.
    gate : bool
        Compared by the promotion gate (a version must beat the baselines on it).
    regions : bool
        Computed on the active-region pixels (``score(..., regions=True)``), else on the disk.
    higher_is_better : bool
    compute : callable, optional
        ``compute(pred, truth, mask, geometry) -> float`` (Gauss maps, boolean pixels to use,
        a ``DiskGeometry``): how ``score`` computes a metric it has no code of its own for.
        None for the metrics ``score`` computes itself.
    """

    key: str
    label: str
    unit: str = ""
    fmt: str = ".3f"
    live: bool = False
    gate: bool = False
    regions: bool = False
    higher_is_better: bool = True
    compute: Callable[..., float] | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The flat name: ``ar_ppa.20`` -> ``ar_ppa_20``."""
        return self.key.replace(".", "_")

    def read(self, scores: Mapping[str, Any]) -> float | None:
        """This metric's finite value in a ``score`` result (or a block of means), else None.

        A value stored as ``{"mean": x, ...}`` (aggregates over days) gives ``x``; the flat
        ``name`` (``ar_ppa_20``) is read too.
        """
        if self.name in scores:
            value: Any = scores[self.name]
        else:
            value = scores
            for part in self.key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping):
            value = value.get("mean")
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None

    def format(self, value: float | None) -> str:
        """``value`` as the tables show it (``n/a`` for a missing or non-finite value)."""
        if value is None or not math.isfinite(value):
            return "n/a"
        return format(value, self.fmt)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the API's ``GET /v1/metric-table``)."""
        return {"name": self.name, "key": self.key, "label": self.label, "unit": self.unit, "fmt": self.fmt,
                "live": self.live, "gate": self.gate, "regions": self.regions,
                "higher_is_better": self.higher_is_better}


METRICS: list[Metric] = [
    Metric("psnr", "PSNR full disk", "dB", ".2f", live=True),
    Metric("ssim", "SSIM full disk", live=True),
    Metric("r", "r full disk", live=True),
    Metric("r_bin8", "r 8x8 bins, full disk", live=True, gate=True),
    Metric("ppa.10", "polarity agreement |B| > 10 G, full disk", live=True),
    Metric("tumf_ratio", "unsigned flux ratio", live=True),
    Metric("netflux_ratio", "net flux ratio", live=True),
    Metric("ar_psnr", "PSNR active regions", "dB", ".2f", regions=True),
    Metric("ar_ssim", "SSIM active regions", regions=True),
    Metric("ar_r", "r active regions", regions=True),
    Metric("ar_ppa.20", "polarity agreement |B| > 20 G, active regions", regions=True, gate=True),
    Metric("region_sign_agreement", "AR net-flux sign agreement", regions=True),
]
"""The table, in display order. Read it through the functions below, which see registrations."""


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the table (it must bring its ``compute``); returns it."""
    if metric.compute is None or "." in metric.key:
        raise ValueError(f"metric {metric.key}: a registered metric needs compute= and a key without dots")
    if any(m.name == metric.name for m in METRICS):
        raise ValueError(f"metric {metric.name} exists")
    METRICS.append(metric)
    return metric


def unregister(name: str) -> None:
    """Remove the metric of flat name ``name`` (tests)."""
    METRICS[:] = [m for m in METRICS if m.name != name]


def live_metrics() -> tuple[Metric, ...]:
    """The metrics exported as live verification gauges."""
    return tuple(m for m in METRICS if m.live)


def gate_metrics() -> tuple[Metric, ...]:
    """The metrics the promotion gate compares."""
    return tuple(m for m in METRICS if m.gate)


def by_name(name: str) -> Metric:
    """The metric of flat name ``name`` (``KeyError`` if there is none)."""
    for m in METRICS:
        if m.name == name:
            return m
    raise KeyError(name)


def flat_scores(scores: Mapping[str, Any], metrics: tuple[Metric, ...] | list[Metric] | None = None) -> dict[str, float | None]:
    """``{name: value}`` of ``metrics`` (default all) read from a ``score`` result."""
    return {m.name: m.read(scores) for m in (METRICS if metrics is None else metrics)}
