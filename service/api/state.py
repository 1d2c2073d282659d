"""What the running service tells the API about itself.

``synmag serve`` builds one :class:`AppState`, passes it to
:func:`service.api.app.create_app` and updates it as the pipeline reports
(its process started or stopped, model loaded or swapped, tick run, product
committed: :mod:`service.commands.pipeline_process` relays the pipeline
process's reports here). The API only reads it, and may :meth:`~AppState.subscribe`
to committed products (the in-memory ``/latest``). A process with no pipeline
(API only, tests) passes ``state=None``: ``/readyz`` then checks the database,
the store and the feed's freshness, and reports the model check as not applicable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

PipelinePhase = Literal["starting", "running", "stopping", "stopped", "failed"]


@dataclass
class AppState:
    """Runtime facts shared between the pipeline and the API (thread-safe updates).

    Attributes
    ----------
    model_version : str or None
        Registry version of the loaded ONNX generator; None while none is loaded.
    active_providers : list of str
        ONNX Runtime providers actually active in the session (first one runs the model).
    last_product_obs_time : datetime or None
        Observation time (UTC) of the newest product this process committed.
    last_product_committed_at : datetime or None
        Wall time (UTC) that product was committed.
    last_tick_at : datetime or None
        Wall time (UTC) the scheduler last ran.
    pipeline : str or None
        The pipeline process's phase: ``starting`` (loading the model), ``running``,
        ``stopping``, ``stopped`` or ``failed`` (then ``pipeline_detail`` says why);
        None when no pipeline process reports here (a pipeline run in-process, tests).
    pipeline_detail : str or None
        Why the pipeline stopped or failed.
    leader : bool or None
        Whether this replica schedules the work (holds the leader lock); None before the first tick.
    last_tick_error : str or None
        What went wrong in the last tick (e.g. the archive listing failed); None when it went well.
    """

    model_version: str | None = None
    active_providers: list[str] = field(default_factory=list)
    last_product_obs_time: datetime | None = None
    last_product_committed_at: datetime | None = None
    last_tick_at: datetime | None = None
    pipeline: PipelinePhase | None = None
    pipeline_detail: str | None = None
    leader: bool | None = None
    last_tick_error: str | None = None
    _listeners: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def model_loaded(self) -> bool:
        """Whether an inference session is loaded."""
        return self.model_version is not None

    def set_model(self, version: str | None, providers: list[str]) -> None:
        """Record the model now in use (None when unloaded)."""
        with self._lock:
            self.model_version = version
            self.active_providers = list(providers)

    def product_committed(self, obs_time: datetime, committed_at: datetime) -> None:
        """Record a committed product (the newest observation time wins) and tell subscribers."""
        with self._lock:
            if self.last_product_obs_time is None or obs_time > self.last_product_obs_time:
                self.last_product_obs_time = obs_time
            self.last_product_committed_at = committed_at
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def tick_done(self, at: datetime, leader: bool, error: str | None) -> None:
        """Record a scheduler tick: when, whether this replica led, what failed (None: nothing)."""
        with self._lock:
            self.last_tick_at = at
            self.leader = leader
            self.last_tick_error = error

    def set_pipeline(self, phase: PipelinePhase, detail: str | None = None) -> None:
        """Record the pipeline's phase (and why, when it stopped or failed)."""
        with self._lock:
            self.pipeline = phase
            self.pipeline_detail = detail

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the reporting thread) after each committed product."""
        with self._lock:
            self._listeners.append(listener)
