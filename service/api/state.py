"""What the running service tells the API about itself.

``synmag serve`` builds one :class:`AppState`, passes it to
:func:`service.api.app.create_app` and updates it as the runtime changes (model
loaded or swapped, product committed). The API only reads it. A process with
no pipeline (API only, tests) passes ``state=None``: ``/readyz`` then checks the
database, the store and the feed's freshness, and reports the model check as
not applicable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime


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
    """

    model_version: str | None = None
    active_providers: list[str] = field(default_factory=list)
    last_product_obs_time: datetime | None = None
    last_product_committed_at: datetime | None = None
    last_tick_at: datetime | None = None
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
        """Record a committed product; the newest observation time wins."""
        with self._lock:
            if self.last_product_obs_time is None or obs_time > self.last_product_obs_time:
                self.last_product_obs_time = obs_time
            self.last_product_committed_at = committed_at
