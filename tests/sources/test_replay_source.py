"""The replay archive's HMI: truth of a published frame, and an earlier day's HMI as prior, stamped by the real gap."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.devtools.replay import ReplayArchive, serve_in_thread
from service.settings import Settings
from service.sources.magnetograms.replay import ReplaySource
from tests.hmi_days import write_days

NOW = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture
def archive(tmp_path: Path) -> ReplayArchive:
    """Four dataset days a day apart (each 7 s later in the day than the one before), six minutes published."""
    write_days(tmp_path, 4, jitter_s=7)
    return ReplayArchive(tmp_path, cadence_s=1, rewind_minutes=10, backlog=5, now=lambda: NOW)


@pytest.fixture
def served(archive: ReplayArchive) -> Iterator[tuple[ReplayArchive, ReplaySource]]:
    server, url = serve_in_thread(archive)
    with ReplaySource.from_settings(Settings(truth_url=url)) as source:
        yield archive, source
    server.shutdown()
    server.server_close()


def frame_time(archive: ReplayArchive, k: int) -> datetime:
    return archive.frames_of_minute(k)[0].obs_time


def test_the_prior_is_the_day_before_stamped_by_the_real_gap(archive: ReplayArchive) -> None:
    t = frame_time(archive, 2)  # replay minute 2 shows dataset day 2
    hmi, stamped = archive.prior_for(t, timedelta(0), WEEK)
    assert hmi.name.startswith("2014-03-20T00_01_01")  # day 1
    assert stamped == t - timedelta(days=1, seconds=7)


def test_the_age_window_picks_older_days_or_none(archive: ReplayArchive) -> None:
    t = frame_time(archive, 3)
    hmi, stamped = archive.prior_for(t, timedelta(hours=30), WEEK)
    assert hmi.name.startswith("2014-03-20") and stamped == t - timedelta(days=2, seconds=14)
    assert archive.prior_for(t, timedelta(0), timedelta(hours=12)) is None


def test_a_frame_of_the_first_day_or_an_unpublished_minute_has_no_prior(archive: ReplayArchive) -> None:
    assert archive.prior_for(frame_time(archive, 4), timedelta(0), WEEK) is None  # minute 4 shows day 0 again
    assert archive.prior_for(frame_time(archive, 9), timedelta(0), WEEK) is None  # not published yet


def test_the_source_gets_the_truth_of_a_published_frame(served: tuple[ReplayArchive, ReplaySource]) -> None:
    archive, source = served
    frame = archive.frames_of_minute(1)[0]
    m = source.nearest(frame.obs_time, frame.name)
    assert m is not None and m.in_model_frame and m.obs_time == frame.obs_time
    assert m.sha256 == hashlib.sha256(archive.truth_bytes(frame.name)).hexdigest()
    assert source.nearest(frame.obs_time, "not-a-gong-frame.fits") is None


def test_the_source_gets_the_prior_once_per_file(served: tuple[ReplayArchive, ReplaySource]) -> None:
    archive, source = served
    t = frame_time(archive, 2)
    m = source.newest_before(t, timedelta(0), WEEK)
    assert m is not None and m.origin.startswith("2014-03-20") and m.obs_time == t - timedelta(days=1, seconds=7)
    before = archive.requests
    assert source.newest_before(t + timedelta(seconds=30), timedelta(0), WEEK) is m
    assert archive.requests == before + 1  # the JSON answer only: the image is kept


def test_the_prior_is_in_the_polarity_of_its_stamped_date_as_the_truth_is(
        served: tuple[ReplayArchive, ReplaySource]) -> None:
    """2014 (cycle 24) data stamped in 2026 (cycle 25): negated, so persistence and truth agree."""
    from service.sources.magnetograms.files import read_webp

    archive, source = served
    m = source.newest_before(frame_time(archive, 2), timedelta(0), WEEK)
    assert m is not None
    own = read_webp(archive.hmi_file(m.origin).read_bytes(), m.origin)
    on = np.isfinite(own.data)
    assert np.array_equal(m.data[on], -own.data[on])


def test_the_prior_endpoint_answers_400_and_404(served: tuple[ReplayArchive, ReplaySource]) -> None:
    archive, source = served
    with httpx.Client(base_url=source.base_url) as client:
        assert client.get("/prior.json", params={"t": "yesterday"}).status_code == 400
        assert client.get("/prior.json", params={"t": frame_time(archive, 0).isoformat()}).status_code == 404
        assert client.get("/hmi/nope_hmi.webp").status_code == 404
        name = archive.queues["B"][0].truth.name
        assert client.get(f"/hmi/{name}").status_code == 400  # no stamp: no polarity to serve it in
    assert source.newest_before(frame_time(archive, 0), timedelta(0), WEEK) is None
