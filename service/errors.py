"""Error classes shared across synmag.

``UsageError`` is a user's mistake (bad argument, unreadable file): the CLI prints
it as one line and exits 2. ``FrameRejected`` is a bad input frame with a
machine-readable ``reason``. The pipeline classifies upstream failures as
``SkipError`` (nothing to do, e.g. 404), ``RetryableError`` (5xx, timeouts,
truncated downloads) and ``FatalError`` (other 4xx, misconfiguration).
"""

from __future__ import annotations


class SynmagError(Exception):
    """Base class of every error synmag raises on purpose."""


class UsageError(SynmagError):
    """A user error: one line on stderr, exit status 2, no traceback."""


class FrameRejected(SynmagError):
    """An input frame that cannot or must not be used.

    Parameters
    ----------
    reason : str
        Machine-readable reason, e.g. ``"corrupt_fits"``, ``"nan_pixels"``.
    detail : str
        Human-readable explanation.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ModelIncompatible(SynmagError):
    """A model built for another preprocessing version (or otherwise unusable)."""


class SkipError(SynmagError):
    """Nothing to do for this item (e.g. upstream 404); not retried."""


class RetryableError(SynmagError):
    """A transient failure (5xx, timeout, truncated body); retried with backoff."""


class FatalError(SynmagError):
    """A permanent failure (other 4xx, bad configuration); not retried."""
