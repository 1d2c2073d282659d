"""``/v1/metric-table``: the metric table (``service.science.metric_table``) for clients and the viewer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["feed"])


@router.get("/metric-table")
def metric_table() -> list[dict[str, Any]]:
    """Every metric the service reports: name, label, unit, format, live gauge, gate metric."""
    from service.science.metric_table import METRICS

    return [m.as_dict() for m in METRICS]
