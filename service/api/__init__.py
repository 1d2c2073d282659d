"""The forecaster feed: FastAPI app (``create_app``), JSON API, web viewer, /metrics."""

from __future__ import annotations

from service.api.state import AppState

__all__ = ["AppState"]
