"""Object keys, readable by time.

``products/2026/11/21/20261121T1203Z_gong-LE_<model version>.fits``,
``raw/gong/2026/11/21/<file name>``, ``models/<version>/model.onnx``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.storage.base import check_key


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("datetimes used in keys must be timezone-aware (UTC)")
    return t.astimezone(UTC)


def _day_dir(t: datetime) -> str:
    return f"{t:%Y/%m/%d}"


def product_key(obs_time: datetime, source: str, site: str, model_version: str, ext: str) -> str:
    """Key of a product file made from ``source``'s ``site``; ``ext`` is ``"fits"`` or ``"png"``."""
    t = _utc(obs_time)
    return check_key(
        f"products/{_day_dir(t)}/{t:%Y%m%dT%H%MZ}_{source}-{site}_{model_version}.{ext.lstrip('.')}"
    )


def raw_key(obs_time: datetime, source: str, filename: str) -> str:
    """Key of an archived raw frame of ``source``, under its original file name."""
    t = _utc(obs_time)
    return check_key(f"raw/{source}/{_day_dir(t)}/{filename}")


def model_key(version: str, name: str = "model.onnx") -> str:
    """Key of a file of a registered model version (``model.onnx``, ``report.json``)."""
    return check_key(f"models/{version}/{name}")
