"""What every frame source gives the pipeline: listed frames, their bytes, decoded frames.

A *frame source* is one H-alpha network's archive (GONG today). It owns everything
about that network, written once in its own module: the client, the file-name grammar,
the station table, the reader and which header keys carry the quality measures. The
pipeline sees only :class:`RemoteFrame` (what was listed), :class:`Download` (the verified
bytes) and :class:`~service.science.frame.HalphaFrame` (what the reader made of them).

Errors follow one classification (:mod:`service.errors`): a listing or download that
finds nothing raises ``SkipError``, a transient failure ``RetryableError`` (after the
source's own capped, jittered retries), anything else ``FatalError``; a file that is not
a usable frame raises ``FrameRejected`` from :meth:`FrameSource.read`, never anything else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from service.science.frame import HalphaFrame
    from service.settings import Settings

__all__ = ["Download", "FrameSource", "RemoteFrame"]


@dataclass(frozen=True)
class RemoteFrame:
    """One frame listed in a source's archive.

    Attributes
    ----------
    source : str
        The source's registered name (``FrameSource.name``).
    name : str
        File name, unique within the source.
    url : str
    obs_time : datetime
        Observation time (aware UTC), from the name.
    site : str
        Station code within the network.
    """

    source: str
    name: str
    url: str
    obs_time: datetime
    site: str

    @property
    def minute(self) -> datetime:
        """Observation minute (UTC, seconds dropped): the key a product is made for."""
        return self.obs_time.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Download:
    """The verified bytes of one frame."""

    frame: RemoteFrame
    data: bytes
    sha256: str
    seconds: float


class FrameSource(ABC):
    """One H-alpha network's archive. Subclasses set :attr:`name` and register themselves
    with :func:`service.sources.registry.frame_source`."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> FrameSource:
        """The source configured by ``settings``."""

    @abstractmethod
    def list_recent(self, now: datetime, since: datetime, deadline: float | None = None) -> list[RemoteFrame]:
        """Frames observed in ``[since, now]``, in time order (``deadline``: ``time.monotonic`` value)."""

    @abstractmethod
    def download(self, frame: RemoteFrame, deadline: float | None = None) -> Download:
        """Fetch one listed frame and hash it."""

    @abstractmethod
    def remote(self, name: str) -> RemoteFrame | None:
        """The frame of that file name (e.g. one archived earlier), or None if not one of ours."""

    @classmethod
    @abstractmethod
    def read(cls, data: bytes, name: str | None = None) -> HalphaFrame:
        """Decode a downloaded file; raises ``FrameRejected`` with a reason, never anything else.

        A class method: reading needs no connection (``frame_reader(name)`` gives it alone).
        """

    def abort(self) -> None:  # noqa: B027 - optional: sources without retries need nothing
        """Stop retrying now (the service is stopping)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
