"""The GONG archive client against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.errors import FatalError, RetryableError, SkipError
from service.settings import Settings
from service.sources.base import RemoteFrame
from service.sources.gong.archive import GongArchive, parse_listing, remote_frame
from service.sources.gong.names import day_path

APACHE_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of /HA/haf/202611/20261121</title></head><body>
<h1>Index of /HA/haf/202611/20261121</h1><table>
<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td><a href="/HA/haf/202611/">Parent Directory</a></td></tr>
<tr><td><a href="20261121120034Lh.fits.fz">20261121120034Lh.fits.fz</a></td></tr>
<tr><td><a href="20261121120034Lh.jpg">20261121120034Lh.jpg</a></td></tr>
<tr><td><a href="20261121120014Bh.fits.fz">20261121120014Bh.fits.fz</a></td></tr>
<tr><td><a href="20261121120014Xh.fits.fz">bad site letter</a></td></tr>
<tr><td><a href="20261321120014Bh.fits.fz">month 13</a></td></tr>
<tr><td><a href='20261121120114Ch.fits.fz'>single quotes</a></td></tr>
</table></body></html>
"""


def test_listing_keeps_only_frame_names():
    frames = parse_listing(APACHE_PAGE, "http://archive")
    assert [f.name for f in frames] == [
        "20261121120014Bh.fits.fz", "20261121120034Lh.fits.fz", "20261121120114Ch.fits.fz",
    ]


def test_frame_url_and_keys_follow_the_nso_layout():
    frame = remote_frame("20261121120034Lh.fits.fz", "https://gong2.nso.edu/")
    assert frame is not None
    assert frame.url == "https://gong2.nso.edu/HA/haf/202611/20261121/20261121120034Lh.fits.fz"
    assert frame.obs_time == datetime(2026, 11, 21, 12, 0, 34, tzinfo=UTC)
    assert frame.minute == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert (frame.source, frame.site) == ("gong", "LE")
    assert day_path(date(2026, 1, 2)) == "HA/haf/202601/20260102/"


class _Upstream:
    """Scripted answers per path: a list of (status, body, mode) consumed in order."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, bytes, str]]] = {}
        self.hits: dict[str, int] = {}


@pytest.fixture
def upstream() -> Iterator[tuple[_Upstream, str]]:
    state = _Upstream()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            answers = state.script.get(self.path) or [(404, b"", "")]
            status, body, mode = answers.pop(0) if len(answers) > 1 else answers[0]
            if mode == "stall":
                time.sleep(1.0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "drip":  # every read is quick, the whole body is not
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
            if mode == "truncate":
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


_OPEN: list[GongArchive] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _archive(base: str, retries: int = 2, timeout: float = 5.0) -> tuple[GongArchive, list[float]]:
    slept: list[float] = []
    settings = Settings(gong_base_url=base, http_retries=retries, http_timeout_s=timeout,
                        http_backoff_base_s=1.0, http_backoff_cap_s=3.0)
    archive = GongArchive(settings, sleep=slept.append)
    _OPEN.append(archive)
    return archive, slept


FRAME = "/HA/haf/202611/20261121/20261121120014Bh.fits.fz"


def _frame(base: str) -> RemoteFrame:
    frame = remote_frame(FRAME.rsplit("/", 1)[1], base)
    assert frame is not None
    return frame


def test_download_hashes_and_returns_the_bytes(upstream):
    state, base = upstream
    state.script[FRAME] = [(200, b"x" * 1000, "")]
    archive, _ = _archive(base)
    got = archive.download(_frame(base))
    assert got.data == b"x" * 1000
    assert got.sha256 == hashlib.sha256(b"x" * 1000).hexdigest()


def test_404_is_skipped_without_retry(upstream):
    state, base = upstream
    archive, slept = _archive(base)
    with pytest.raises(SkipError):
        archive.download(_frame(base))
    assert state.hits[FRAME] == 1 and slept == []


def test_other_4xx_is_fatal(upstream):
    state, base = upstream
    state.script[FRAME] = [(403, b"forbidden", "")]
    archive, _ = _archive(base)
    with pytest.raises(FatalError):
        archive.download(_frame(base))
    assert state.hits[FRAME] == 1


def test_5xx_and_truncation_are_retried_with_capped_backoff(upstream):
    state, base = upstream
    state.script[FRAME] = [(500, b"", ""), (200, b"y" * 4000, "truncate"), (200, b"y" * 4000, "")]
    archive, slept = _archive(base, retries=4)
    assert archive.download(_frame(base)).data == b"y" * 4000
    assert state.hits[FRAME] == 3
    assert len(slept) == 2 and all(0.5 <= s <= 3.0 for s in slept)


def test_retries_are_capped(upstream):
    state, base = upstream
    state.script[FRAME] = [(503, b"", "")]
    archive, slept = _archive(base, retries=2)
    with pytest.raises(RetryableError, match="3 attempt"):
        archive.download(_frame(base))
    assert state.hits[FRAME] == 3 and len(slept) == 2


def test_abort_ends_a_backoff_and_the_retries(upstream):
    state, base = upstream
    state.script[FRAME] = [(503, b"", "")]
    settings = Settings(gong_base_url=base, http_retries=10, http_backoff_base_s=30.0, http_backoff_cap_s=30.0)
    archive = GongArchive(settings)  # real waits: 15-30 s a backoff
    _OPEN.append(archive)
    threading.Timer(0.3, archive.abort).start()
    t0 = time.monotonic()
    with pytest.raises(RetryableError, match="stopped while retrying"):
        archive.download(_frame(base))
    assert time.monotonic() - t0 < 10.0 and state.hits[FRAME] == 1


def test_timeout_is_retryable(upstream):
    state, base = upstream
    state.script[FRAME] = [(200, b"z", "stall")]
    archive, _ = _archive(base, retries=0, timeout=0.3)
    with pytest.raises(RetryableError, match="timeout"):
        archive.download(_frame(base))


def test_a_dripping_download_is_cut_at_the_request_timeout(upstream):
    state, base = upstream
    state.script[FRAME] = [(200, b"d" * 200, "drip")]  # 10 s at 50 ms a byte
    archive, _ = _archive(base, retries=0, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(RetryableError, match="still sending"):
        archive.download(_frame(base))
    assert time.monotonic() - t0 < 3.0


def test_missing_day_directory_lists_nothing(upstream):
    _, base = upstream
    archive, _ = _archive(base)
    assert archive.list_day(date(2026, 11, 21)) == []


def test_listing_through_http(upstream):
    state, base = upstream
    state.script["/HA/haf/202611/20261121/"] = [(200, APACHE_PAGE.encode(), "")]
    archive, _ = _archive(base)
    now = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)
    frames = archive.list_recent(now, datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC))
    assert [f.name for f in frames] == ["20261121120034Lh.fits.fz", "20261121120114Ch.fits.fz"]


def test_listings_are_polled_with_conditional_requests(val_folder_replay):
    replay, url = val_folder_replay
    archive, _ = _archive(url)
    today = datetime.now(UTC).date()
    first, second = archive.list_day(today), archive.list_day(today)
    assert first == second and first  # the 304 answer gives the page kept from the first
    assert (replay.listings, replay.not_modified) == (2, 1)


def test_a_day_that_is_over_is_not_listed_again_every_poll(upstream):
    state, base = upstream
    state.script["/HA/haf/202611/20261121/"] = [(200, APACHE_PAGE.encode(), "")]
    archive, _ = _archive(base)
    day = date(2026, 11, 21)  # long over
    assert archive.list_day(day) == archive.list_day(day) == archive.list_day(day)
    assert state.hits["/HA/haf/202611/20261121/"] == 1


@pytest.fixture
def val_folder_replay(data_dir, tmp_path):
    from service.devtools.replay import ReplayArchive, serve_in_thread
    from tests.frames import link_val_days

    replay = ReplayArchive(link_val_days(data_dir, tmp_path / "val", 2), rewind_minutes=3, backlog=2)
    server, url = serve_in_thread(replay)
    yield replay, url
    server.shutdown()
    server.server_close()
