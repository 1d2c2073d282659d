"""HTTP for upstream archives: one GET with a whole-request timeout, classified errors, retries.

Every failure is classified once, here: 404 is :class:`~service.errors.SkipError` (not
there), 5xx, 429, timeouts, dropped connections and short bodies are
:class:`~service.errors.RetryableError` (retried with capped, jittered exponential backoff,
raised once the retries are spent), any other 4xx is :class:`~service.errors.FatalError`.
Each failure is counted in ``synmag_upstream_errors_total{kind}``. Upstreams can take
15-20 s a request: every request has a timeout and every call may carry a deadline, so
a tick never hangs; :meth:`UpstreamHttp.abort` ends a backoff at once (the service is stopping).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from service import observability as obs
from service.errors import FatalError, RetryableError, SkipError
from service.settings import Settings
from service.vocabulary import UpstreamError

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["UpstreamHttp"]


class UpstreamHttp:
    """An HTTP client for one upstream (one per source; thread-safe for sequential use).

    Parameters
    ----------
    settings : Settings
        Timeouts, retry count and backoff (``http_*``).
    user_agent : str
    sleep : callable, optional
        Replaced in tests to observe backoff without waiting. By default the backoff waits
        on an event that :meth:`abort` sets.
    """

    def __init__(self, settings: Settings, user_agent: str, sleep: Callable[[float], None] | None = None) -> None:
        self.retries = settings.http_retries
        self.backoff_base = settings.http_backoff_base_s
        self.backoff_cap = settings.http_backoff_cap_s
        self.timeout = settings.http_timeout_s
        self._aborted = threading.Event()
        self._sleep = sleep or self._aborted.wait
        # url -> (ETag, Last-Modified, body) of the last answer to a conditional GET
        self._validated: dict[str, tuple[str | None, str | None, bytes]] = {}
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            follow_redirects=True,
            headers={"User-Agent": user_agent},
        )

    def close(self) -> None:
        self._client.close()

    def abort(self) -> None:
        """Stop retrying: a backoff in progress ends now and no further attempt is made."""
        self._aborted.set()

    def get(self, url: str, deadline: float | None = None, *, conditional: bool = False) -> bytes:
        """The body of ``url``, retried as the module docstring says.

        ``conditional``: for a resource polled often (a listing), the last answer's ``ETag`` and
        ``Last-Modified`` are sent back (``If-None-Match``, ``If-Modified-Since``) and a 304 returns
        the body kept from then: a poll of an unchanged listing costs the server no page.
        """
        return self.retrying(url, lambda: self._get_once(url, deadline, conditional), deadline)

    def retrying(self, what: str, once: Callable[[], T], deadline: float | None = None) -> T:
        """``once()``, called again after each ``RetryableError`` with :meth:`backoff`, at most
        ``retries`` more times, never past ``deadline`` (monotonic), and not after :meth:`abort`
        (a backoff in progress ends at once). The last error is raised, naming ``what``."""
        attempt = 0
        while True:
            try:
                return once()
            except RetryableError as exc:
                attempt += 1
                delay = self.backoff(attempt)
                late = deadline is not None and time.monotonic() + delay >= deadline
                if attempt > self.retries or late or self._aborted.is_set():
                    raise RetryableError(f"{what}: gave up after {attempt} attempt(s): {exc}") from exc
                log.info("retrying %s in %.1f s (attempt %d): %s", what, delay, attempt, exc)
                self._sleep(delay)
                if self._aborted.is_set():
                    raise RetryableError(f"{what}: stopped while retrying: {exc}") from exc

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with "equal jitter": uniform in [ceiling / 2, ceiling]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _get_once(self, url: str, deadline: float | None = None, conditional: bool = False) -> bytes:
        # httpx's timeouts bound each read, so a server dripping a byte a second would hold
        # the tick for as long as it likes: the whole request gets http_timeout_s (or less,
        # up to the caller's deadline), checked as the body arrives.
        limit = time.monotonic() + self.timeout
        if deadline is not None:
            limit = min(limit, deadline)
        cached = self._validated.get(url) if conditional else None
        headers = {}
        if cached is not None:
            etag, modified, _ = cached
            headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", modified)) if v}
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304 and cached is not None:
                    return cached[2]
                check_status(response.status_code, url)
                chunks = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > limit:
                        _count(UpstreamError.TIMEOUT)
                        raise RetryableError(
                            f"timeout: {url} still sending after {self.timeout:g} s "
                            f"({sum(map(len, chunks))} bytes so far)"
                        )
                data = b"".join(chunks)
        except httpx.TimeoutException as exc:
            _count(UpstreamError.TIMEOUT)
            raise RetryableError(f"timeout: {exc!r}") from exc
        except httpx.RemoteProtocolError as exc:  # connection dropped mid-body: a truncated download
            _count(UpstreamError.TRUNCATED)
            raise RetryableError(f"truncated: {exc}") from exc
        except httpx.TransportError as exc:
            _count(UpstreamError.CONNECTION)
            raise RetryableError(f"connection: {exc!r}") from exc
        expected = response.headers.get("content-length")
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if expected is not None and not encoded and int(expected) != len(data):
            _count(UpstreamError.TRUNCATED)
            raise RetryableError(f"truncated: {len(data)} of {expected} bytes from {url}")
        if conditional:
            etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
            if etag or modified:
                self._validated[url] = (etag, modified, data)
        return data


def check_status(status: int, url: str) -> None:
    """404 -> skip; 5xx and 429 -> retry; other 4xx -> fatal (our request is wrong)."""
    if status == 404:
        _count(UpstreamError.NOT_FOUND)
        raise SkipError(f"404 not found: {url}")
    if status >= 500 or status == 429:
        _count(UpstreamError.HTTP_5XX)
        raise RetryableError(f"HTTP {status} from {url}")
    if status >= 400:
        _count(UpstreamError.HTTP_4XX)
        raise FatalError(f"HTTP {status} from {url}")


def _count(kind: UpstreamError) -> None:
    obs.upstream_errors_total.labels(kind=kind).inc()
