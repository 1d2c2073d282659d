"""Which sources exist: one registration per class, looked up by name from settings.

A source module decorates its class (``@frame_source`` or ``@magnetogram_source``); the
built-in ones are imported by :mod:`service.sources`, so importing that package registers
them. ``SYNMAG_FRAME_SOURCES`` and ``SYNMAG_TRUTH_SOURCE`` name registered sources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from service.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from service.science.frame import HalphaFrame
    from service.settings import Settings
    from service.sources.base import FrameSource

__all__ = [
    "FRAME_SOURCES",
    "MAGNETOGRAM_SOURCES",
    "frame_reader",
    "frame_source",
    "magnetogram_source",
    "open_frame_sources",
    "open_magnetogram_source",
]

FRAME_SOURCES: dict[str, type[FrameSource]] = {}
MAGNETOGRAM_SOURCES: dict[str, type[Any]] = {}

T = TypeVar("T")


def frame_source(cls: T) -> T:
    """Class decorator: register a :class:`~service.sources.base.FrameSource` under its ``name``."""
    FRAME_SOURCES[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def magnetogram_source(cls: T) -> T:
    """Class decorator: register a magnetogram source under its ``name``."""
    MAGNETOGRAM_SOURCES[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def _lookup(table: dict[str, type[Any]], name: str, what: str) -> type[Any]:
    try:
        return table[name]
    except KeyError:
        raise UsageError(f"unknown {what} {name!r}; registered: {', '.join(sorted(table))}") from None


def frame_reader(name: str) -> Callable[[bytes, str | None], HalphaFrame]:
    """The reader of frame source ``name`` (no connection is opened)."""
    import service.sources  # noqa: F401  (registers the built-in sources)

    return _lookup(FRAME_SOURCES, name, "frame source").read


def open_frame_sources(settings: Settings) -> dict[str, FrameSource]:
    """The frame sources ``SYNMAG_FRAME_SOURCES`` names, by name, each built from settings."""
    import service.sources  # noqa: F401  (registers the built-in sources)

    return {name: _lookup(FRAME_SOURCES, name, "frame source").from_settings(settings)
            for name in settings.frame_sources}


def open_magnetogram_source(settings: Settings, name: str | None = None) -> Any:
    """The magnetogram source named ``name`` (default ``SYNMAG_TRUTH_SOURCE``); None for "none"."""
    import service.sources  # noqa: F401  (registers the built-in sources)

    name = settings.truth_source if name is None else name
    if name == "none":
        return None
    return _lookup(MAGNETOGRAM_SOURCES, name, "magnetogram source").from_settings(settings)
