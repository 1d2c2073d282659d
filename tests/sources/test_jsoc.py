"""The ``jsoc`` magnetogram source, end to end over HTTP against the stand-in (the real drms code runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.devtools.jsoc_standin import JsocStandin, serve_in_thread
from service.errors import FatalError, RetryableError
from service.settings import Settings
from service.sources.http import UpstreamHttp
from service.sources.magnetograms.files import parse_jsoc_time, parse_quality
from service.sources.magnetograms.jsoc import JsocSource, header_from_record, record_set
from tests.hmi_days import T0, write_days

NRT, DEFINITIVE = "hmi.M_720s_nrt", "hmi.M_720s"


_OPEN: list[JsocSource] = []


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[JsocStandin, str]]:
    write_days(tmp_path / "days", 4)
    st = JsocStandin(tmp_path / "days", naxis=256)
    server, url = serve_in_thread(st)
    yield st, url
    while _OPEN:
        _OPEN.pop().close()
    server.shutdown()
    server.server_close()


def source(url: str, retries: int = 2, **settings: object) -> JsocSource:
    """A source for the stand-in at ``url``, closed when the test ends; backoff without waiting unless asked."""
    backoff = {"http_backoff_base_s": 0.0, "http_backoff_cap_s": 0.0, **settings}
    src = JsocSource.from_settings(Settings(jsoc_url=url, http_retries=retries, **backoff))
    _OPEN.append(src)
    return src


# --------------------------------------------------------------------------- parsing
def test_quality_is_parsed_from_hex_strings_and_numbers() -> None:
    assert [parse_quality(v) for v in ("0x00000000", "0x00000400", "1024", 0, 1024.0)] == [0, 1024, 1024, 0, 1024]
    assert [parse_quality(v) for v in (float("nan"), None, "", "MISSING")] == [None, None, None, None]


def test_drms_090_under_pandas_3_loses_quality_and_the_source_does_not(standin: tuple[JsocStandin, str]) -> None:
    """drms issue 167 on the real response shape: a hex QUALITY becomes NaN by default."""
    import drms

    _, url = standin
    src = source(url)
    converted = src.client.query(f"{NRT}[2014.03.19_00:00:00_TAI]", key="QUALITY")["QUALITY"].iloc[0]
    if drms.__version__ == "0.9.0" and int(pd.__version__.split(".")[0]) >= 3:
        assert np.isnan(converted)
    rows, _ = src.query(f"{NRT}[2014.03.19_00:00:00_TAI]", ("QUALITY",))
    assert rows[0]["QUALITY"] == "0x00000000" and parse_quality(rows[0]["QUALITY"]) == 0


def test_jsoc_times_parse_to_utc() -> None:
    assert parse_jsoc_time("2014.03.19_00:00:00_TAI") == datetime(2014, 3, 18, 23, 59, 25, tzinfo=UTC)
    assert parse_jsoc_time("2014.03.19_00:01:07.50_TAI").second == 32
    assert parse_jsoc_time("2014.03.19_00:00_TAI") == datetime(2014, 3, 18, 23, 59, 25, tzinfo=UTC)
    assert parse_jsoc_time("MISSING") is None
    # past the leap-second table's horizon (erfa's "dubious year"): the last offset, no warning
    assert parse_jsoc_time("2040.03.19_00:00:00_TAI") == datetime(2040, 3, 18, 23, 59, 23, tzinfo=UTC)


def test_record_sets_are_inclusive_tai_ranges() -> None:
    lo = datetime(2014, 3, 19, 0, 0, 54, tzinfo=UTC)  # TAI - UTC = 35 s in 2014
    assert record_set(NRT, lo, lo + timedelta(hours=1)) == f"{NRT}[2014.03.19_00:01:29_TAI-2014.03.19_01:01:29_TAI]"


def test_header_from_record_drops_what_drms_could_not_convert() -> None:
    row = {"T_OBS": "2014.03.19_00:00:44.70_TAI", "CROTA2": 180.08, "CDELT1": 0.5043, "RSUN_OBS": float("nan"),
           "CRLT_OBS": -7.1, "QUALITY": "0x00000000"}
    header = header_from_record(row)
    assert "RSUN_OBS" not in header and header["CROTA2"] == 180.08
    assert header["DATE-OBS"].startswith("2014-03-19T00:00:09") and header["HGLT_OBS"] == -7.1


# --------------------------------------------------------------------------- end to end
def test_nearest_is_the_nrt_record_with_its_time_file_hash_and_wcs(standin: tuple[JsocStandin, str]) -> None:
    import hashlib
    import urllib.request

    _, url = standin
    m = source(url).nearest(T0 + timedelta(minutes=2))
    assert m is not None and m.origin == NRT and m.meta["quality"] == "0x00000000"
    assert m.obs_time == datetime(2014, 3, 18, 23, 59, 25, tzinfo=UTC)  # T_OBS of the 00:00:00_TAI slot
    with urllib.request.urlopen(m.meta["url"]) as res:
        assert m.sha256 == hashlib.sha256(res.read()).hexdigest()
    assert m.data.shape == (256, 256) and abs(m.header["CROTA2"] - 180.0) < 0.2
    assert np.isnan(m.data[0, 0]) and np.isfinite(m.data[128, 128])


def test_a_flagged_nrt_record_falls_back_to_the_definitive_one(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    st.set_quality(NRT, T0, 0x400)
    m = source(url).nearest(T0)
    assert m is not None and m.origin == DEFINITIVE


def test_no_record_within_six_minutes_is_none(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    st.drop(DEFINITIVE, T0)
    st.drop(NRT, T0)
    assert source(url).nearest(T0) is None
    assert source(url).nearest(T0 + timedelta(hours=12)) is None


def test_newest_before_is_the_newest_usable_record_in_the_window(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    day3 = T0 + timedelta(days=3)
    st.set_quality(NRT, day3 - timedelta(days=1), 0x400)  # the newest NRT one is flagged: the day before
    m = source(url).newest_before(day3, timedelta(hours=12), timedelta(days=7))
    assert m is not None and m.origin == NRT
    assert abs(m.obs_time - (day3 - timedelta(days=2))) < timedelta(minutes=2)
    assert source(url).newest_before(day3, timedelta(days=4), timedelta(days=7)) is None


def test_a_feed_asking_every_minute_fetches_each_record_once(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    src = source(url)
    for minute in range(30):
        m = src.newest_before(T0 + timedelta(days=1, minutes=minute), timedelta(hours=12), timedelta(days=7))
        assert m is not None and abs(m.obs_time - T0) < timedelta(minutes=2)
    assert st.requests["segment"] == 1
    assert st.requests["rs_list"] == 2  # one listing (reaching an hour ahead) and one record query


def test_a_listing_reaching_now_covers_the_next_minutes_until_it_is_stale(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    now = [T0 + timedelta(days=3, hours=1)]  # the stand-in's last day, an hour ago: a live feed
    src = source(url)
    src._clock = lambda: now[0]
    for _ in range(5):
        now[0] += timedelta(minutes=1)
        assert src.newest_before(now[0], timedelta(0), timedelta(days=7)) is not None
    assert st.requests["rs_list"] == 2  # nothing new can exist after the listing until it is stale
    src.catalogues[NRT].relist_after = timedelta(0)
    src.newest_before(now[0], timedelta(0), timedelta(days=7))
    assert st.requests["rs_list"] == 3


def test_transient_failures_are_retried(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    st.fail_next = 2  # the listing and its first retry answer HTTP 500
    assert source(url, retries=2).nearest(T0) is not None
    assert st.requests["failed"] == 2


def test_an_outage_is_a_retryable_error(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    st.fail_next = 100
    with pytest.raises(RetryableError, match="gave up after 2 attempt"):
        source(url, retries=1).nearest(T0)


def test_a_refused_server_is_a_retryable_error() -> None:
    with JsocSource.from_settings(Settings(jsoc_url="http://127.0.0.1:9", http_retries=0)) as src, \
            pytest.raises(RetryableError):
        src.nearest(T0)


def test_a_series_jsoc_does_not_have_is_fatal(standin: tuple[JsocStandin, str]) -> None:
    _, url = standin
    src = source(url)
    src.series = ("hmi.M_45s_nope",)
    src.catalogues = {"hmi.M_45s_nope": src.catalogues[NRT]}
    with pytest.raises(FatalError, match="does not exist"):
        src.nearest(T0)


def test_the_source_is_built_from_settings() -> None:
    with JsocSource.from_settings(Settings(jsoc_url="http://127.0.0.1:8082/", jsoc_timeout_s=7)) as src:
        assert src.base_url == "http://127.0.0.1:8082" and src.http.timeout == 7
        assert isinstance(src.http, UpstreamHttp)
    with JsocSource.from_settings(Settings()) as default:
        assert default.base_url == "http://jsoc.stanford.edu"


def test_abort_ends_a_backoff_at_once(standin: tuple[JsocStandin, str]) -> None:
    import threading
    import time

    st, url = standin
    st.fail_next = 100
    src = source(url, retries=3, http_backoff_base_s=30.0, http_backoff_cap_s=30.0)
    threading.Timer(0.5, src.abort).start()
    t0 = time.monotonic()
    with pytest.raises(RetryableError, match="stopped while retrying"):
        src.nearest(T0)
    assert time.monotonic() - t0 < 10.0  # not the 15-30 s backoff
