"""``/v1/magnetograms/latest`` from memory: rendered once per change, with a strong ETag.

The feed's most read answer changes about once a minute, so it is kept as the
bytes to send. A request never waits for the database once an answer exists:
when the answer is older than ``max_age_s`` the request that notices starts one
revalidation in a worker thread and is served the current bytes meanwhile
(stale-while-revalidate). Revalidation is cheap: ``max(products.id)`` (the
primary key) and, for the product shown, its verification (scores arrive after
the product); only when either changed is the answer rebuilt. So a product
committed by another replica shows up within ``max_age_s`` plus one request, and
one committed by this process's pipeline at once (:meth:`LatestCache.changed`,
called through :meth:`service.api.state.AppState.subscribe`).

Answers are kept per ``?model=`` value, at most ``max_keys`` of them (least
recently used dropped), so a client cycling through model names cannot grow
memory or turn every request into a query.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.api import products
from service.api.layers import layers_of
from service.db import Product
from service.storage import ObjectStore

log = logging.getLogger(__name__)

NO_PRODUCT = "no magnetogram has been produced yet"


@dataclass(frozen=True)
class Answer:
    """One rendered answer and what it was rendered from."""

    status: int  # 200, or 404 when there is no product (for that model)
    body: bytes
    etag: str | None
    product_id: int | None
    max_id: int | None  # max(products.id) when rendered: any new product changes it
    verification: Any  # the product's verification when rendered


@dataclass
class _Entry:
    answer: Answer
    checked: float  # monotonic time of the last revalidation


class LatestCache:
    """The latest product's answer per model filter, revalidated at most every ``max_age_s``.

    Parameters
    ----------
    sessions : sessionmaker
        Read sessions on the feed's database.
    base : str
        Root of the links in the answer (``SYNMAG_PUBLIC_URL`` or ``""``).
    max_age_s : float
        How old an answer may be before a request triggers its revalidation.
    max_keys : int
        Answers kept (one per ``?model=`` value, ``None`` = all models).
    store : ObjectStore, optional
        The product store, to link the uncertainty layers a product's FITS holds
        (:func:`service.api.layers.layers_of`); None: only the field layer is linked.
    """

    def __init__(
        self, sessions: sessionmaker[Session], base: str, *, max_age_s: float = 1.0,
        max_keys: int = 32, clock: Callable[[], float] = time.monotonic, store: ObjectStore | None = None,
    ) -> None:
        self.sessions = sessions
        self.base = base
        self.store = store
        self.max_age_s = max_age_s
        self.max_keys = max_keys
        self.clock = clock
        self._entries: OrderedDict[str | None, _Entry] = OrderedDict()
        self._refreshing: set[str | None] = set()
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()
        self.rebuilds = 0  # answers rendered (not merely revalidated), for tests and the bench

    async def answer(self, model: str | None) -> Answer:
        """The answer for ``model`` (None: any model); only a key's first request waits."""
        with self._lock:
            entry = self._entries.get(model)
            if entry is not None:
                self._entries.move_to_end(model)
                due = self.clock() - entry.checked >= self.max_age_s and model not in self._refreshing
                if due:
                    self._refreshing.add(model)
        if entry is None:
            return await run_in_threadpool(self.refresh, model)
        if due:
            task = asyncio.create_task(self._refresh_in_thread(model))
            self._tasks.add(task)  # keep a reference until done (asyncio holds weak ones)
            task.add_done_callback(self._tasks.discard)
        return entry.answer

    async def _refresh_in_thread(self, model: str | None) -> None:
        try:
            await run_in_threadpool(self.refresh, model)
        except Exception as exc:  # the database is down: keep serving the last answer
            log.warning("could not revalidate /latest (model=%s): %s: %s", model, type(exc).__name__, exc)
        finally:
            with self._lock:
                self._refreshing.discard(model)

    def changed(self) -> None:
        """A product was committed (or scored) here: revalidate every kept answer now.

        Called from the thread that learns of it; a failure is logged, and the next
        request revalidates again.
        """
        with self._lock:
            keys = list(self._entries)
        for model in keys:
            try:
                self.refresh(model)
            except Exception as exc:
                log.warning("could not refresh /latest (model=%s): %s: %s", model, type(exc).__name__, exc)

    def refresh(self, model: str | None) -> Answer:
        """Revalidate (and if needed rebuild) the answer for ``model``; blocking."""
        with self.sessions() as session:
            max_id = session.scalar(select(func.max(Product.id)))
            with self._lock:
                entry = self._entries.get(model)
            old = entry.answer if entry is not None else None
            if old is not None and old.max_id == max_id and (
                old.product_id is None
                or session.scalar(select(Product.verification).where(Product.id == old.product_id))
                == old.verification
            ):
                answer = old
            else:
                answer = self._build(session, model, max_id)
        with self._lock:
            self._entries[model] = _Entry(answer, self.clock())
            self._entries.move_to_end(model)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        return answer

    def _build(self, session: Session, model: str | None, max_id: int | None) -> Answer:
        self.rebuilds += 1
        product = products.latest_product(session, model_version=model)
        if product is None:
            body = json.dumps({"detail": NO_PRODUCT}).encode()
            return Answer(404, body, None, None, max_id, None)
        full = products.get_product(session, product.id)
        names = layers_of(self.store, full.fits_uri, full.fits_sha256) if self.store is not None else ()
        body = products.detail(session, full, self.base, names).model_dump_json().encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return Answer(200, body, etag, product.id, max_id, full.verification)
