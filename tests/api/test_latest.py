"""``/v1/magnetograms/latest`` from memory: ETag/304, no query per request, fresh across replicas."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest
from sqlalchemy import event, update

from service.api.app import create_app
from service.api.state import AppState
from service.db import InputFrame, Product, make_engine, session_scope
from tests.feedapp import FEED_START, MODEL_VERSION, Feed, make_settings, populate, serve_app

LATEST = "/v1/magnetograms/latest"
_minutes = count(1)


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    return populate(make_settings(tmp_path_factory.mktemp("latest")), n=2)


class Served:
    def __init__(self, client: httpx.Client, engine, state: AppState) -> None:
        self.client, self.engine, self.state = client, engine, state
        self.statements = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args) -> None:
        self.statements += 1


@pytest.fixture(scope="module")
def served(feed: Feed) -> Iterator[Served]:
    engine, state = make_engine(feed.settings), AppState()
    with serve_app(create_app(feed.settings, state, engine=engine)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield Served(client, engine, state)
    engine.dispose()


def commit_elsewhere(feed: Feed) -> int:
    """A product row committed by another replica (its own engine), newer than any; its id."""
    t = FEED_START + timedelta(days=1, minutes=next(_minutes))
    engine = make_engine(feed.settings)
    with session_scope(engine) as s:
        frame = InputFrame(source="gong", filename=f"{t:%Y%m%d%H%M%S}Lh.fits.fz", url="http://archive/x",
                           site="LE", obs_time=t, obs_minute=t, sha256="ef" * 32, size_bytes=1,
                           raw_uri=None, header_generation="gongx", quality={}, accepted=True)
        s.add(frame)
        s.flush()
        product = Product(source="gong", input_frame_id=frame.id, obs_time=t, obs_minute=t, site="LE",
                          model_version=MODEL_VERSION, preprocess_version="1", polarity_sign=-1,
                          fits_uri="file:///elsewhere.fits", png_uri=None, fits_sha256="12" * 32)
        s.add(product)
        s.flush()
        pid = product.id
    engine.dispose()
    return pid


def latest_id(served: Served) -> int:
    return served.client.get(LATEST).json()["id"]


def wait_for_latest(served: Served, pid: int, timeout: float) -> float:
    start = time.monotonic()
    while latest_id(served) != pid:
        assert time.monotonic() - start < timeout, f"/latest did not show product {pid} in {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_latest_has_a_strong_etag_and_answers_304(served: Served) -> None:
    res = served.client.get(LATEST)
    assert res.status_code == 200 and res.headers["etag"].startswith('"')
    assert res.headers["cache-control"] == "no-cache"
    again = served.client.get(LATEST, headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == res.headers["etag"]


def test_latest_is_served_without_a_database_query(served: Served) -> None:
    served.client.get(LATEST)  # this one may revalidate
    before = served.statements
    for _ in range(20):
        assert served.client.get(LATEST).status_code == 200
    assert served.statements - before <= 2  # at most one revalidation (max(id) + verification)


def test_another_replicas_product_shows_within_two_seconds(served: Served, feed: Feed) -> None:
    latest_id(served)
    pid = commit_elsewhere(feed)
    assert wait_for_latest(served, pid, timeout=2.0) < 2.0


def test_a_product_committed_here_shows_at_once(served: Served, feed: Feed) -> None:
    latest_id(served)
    pid = commit_elsewhere(feed)
    served.state.product_committed(datetime.now(UTC), datetime.now(UTC))  # what the pipeline reports
    assert latest_id(served) == pid


def test_a_new_verification_of_the_latest_changes_its_etag(served: Served, feed: Feed) -> None:
    body = served.client.get(LATEST)
    pid, etag = body.json()["id"], body.headers["etag"]
    engine = make_engine(feed.settings)
    with session_scope(engine) as s:
        s.execute(update(Product).where(Product.id == pid).values(verification={"status": "no_truth"}))
    engine.dispose()
    deadline = time.monotonic() + 2.0
    while served.client.get(LATEST).headers["etag"] == etag:
        assert time.monotonic() < deadline, "the verification did not reach /latest"
        time.sleep(0.05)
    assert served.client.get(LATEST).json()["verification"] == {"status": "no_truth"}


def test_an_unknown_model_is_404_with_a_reason(served: Served) -> None:
    res = served.client.get(LATEST, params={"model": "no-such-version"})
    assert res.status_code == 404 and res.json()["detail"] == "no magnetogram has been produced yet"


def test_empty_feed_is_404_until_the_first_product(tmp_path) -> None:
    settings = make_settings(tmp_path)
    populate(settings, n=0)  # migrated, model registered, no product
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(LATEST).status_code == 404
        pid = commit_elsewhere(Feed(settings, [], []))
        deadline = time.monotonic() + 2.0
        while (res := client.get(LATEST)).status_code == 404:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert res.json()["id"] == pid
