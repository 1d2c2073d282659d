"""The stand-in NSO archive: Apache-style listing, re-stamped frames, clock, faults, truth."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.devtools.replay import Faults, ReplayArchive, serve_in_thread
from service.errors import FrameRejected
from service.sources.gong.archive import parse_listing
from service.sources.gong.sites import site_by_letter
from tests.frames import link_val_days

START = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def val_folder(data_dir: Path, tmp_path: Path) -> Path:
    """Two real val days (H-alpha + HMI), linked into a folder of their own."""
    return link_val_days(data_dir, tmp_path / "val", 2)


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(archive: ReplayArchive) -> str:
        server, url = serve_in_thread(archive)
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_clock_publishes_by_cadence_and_never_ahead_of_real_time(val_folder):
    clock = Clock(START)
    archive = ReplayArchive(val_folder, cadence_s=5, rewind_minutes=3, backlog=1, now=clock)
    assert archive.published_count() == 2  # the backlog and the first minute
    clock.t += timedelta(seconds=5)
    assert archive.published_count() == 3
    clock.t += timedelta(seconds=500)  # the replay caught up with now: real time from here
    newest = archive.published()[-1].obs_time
    assert newest <= clock.t - timedelta(seconds=30)
    assert archive.published()[0].obs_time.replace(second=0) == START.replace(second=0) - timedelta(minutes=3)


def test_each_minute_has_one_frame_per_site(val_folder):
    archive = ReplayArchive(val_folder, cadence_s=5, rewind_minutes=3, sites="BLT", now=Clock(START))
    frames = archive.frames_of_minute(0)
    assert [f.site_letter for f in frames] == ["B", "L", "T"]
    assert len({f.obs_time for f in frames}) == 3  # sites observe seconds apart


def test_listing_looks_like_apache(val_folder):
    archive = ReplayArchive(val_folder, cadence_s=5, rewind_minutes=3, now=Clock(START))
    page = archive.listing_html(START.date())
    assert page is not None
    for marker in ("Index of /HA/haf/202611/20261121/", "?C=N;O=D", "Parent Directory", ".jpg"):
        assert marker in page
    names = [f.name for f in parse_listing(page, "http://x")]
    assert names == [f.name for f in archive.published()]
    assert archive.listing_html(START.date() + timedelta(days=1)) is None


def test_frames_are_restamped_real_gong_files(val_folder, serve):
    from service.sources.gong.reader import read_gong

    archive = ReplayArchive(val_folder, cadence_s=60, rewind_minutes=5, backlog=0)
    url = serve(archive)
    frame = archive.published()[0]
    with httpx.Client(timeout=60) as client:  # rendering a frame takes seconds on a busy machine
        listing = client.get(f"{url}/HA/haf/{frame.obs_time:%Y%m}/{frame.obs_time:%Y%m%d}/").text
        assert frame.name in listing
        got = client.get(f"{url}/HA/haf/{frame.obs_time:%Y%m}/{frame.obs_time:%Y%m%d}/{frame.name}")
        again = client.get(str(got.url))
        truth = client.get(f"{url}/truth/{frame.name}.hmi.webp")
    gong = read_gong(got.content, filename=frame.name)
    assert gong.obs_time.datetime.replace(tzinfo=UTC) == frame.obs_time
    assert gong.site == site_by_letter(frame.site_letter).code
    assert again.content == got.content  # same file on every download
    assert truth.status_code == 200


def test_truth_has_the_polarity_of_the_stamped_date(val_folder):
    from service.science.dataset import read_hmi_u8

    now_cycle25 = ReplayArchive(val_folder, rewind_minutes=5, backlog=1, now=Clock(START))
    frame = now_cycle25.published()[0]
    data = read_hmi_u8(frame.item.truth)
    # stamped 2026 (cycle 25) from 2014 (cycle 24) data: the field negated, exactly (v -> 255 - v)
    assert np.array_equal(read_hmi_u8(io.BytesIO(now_cycle25.truth_bytes(frame.name))), 255 - data)
    then = ReplayArchive(val_folder, rewind_minutes=5, backlog=1, now=Clock(datetime(2014, 6, 1, tzinfo=UTC)))
    assert then.truth_bytes(then.published()[0].name) == frame.item.truth.read_bytes()


def test_a_client_hanging_up_leaves_no_traceback(val_folder, serve, capfd):
    import socket
    import struct

    url = serve(ReplayArchive(val_folder, rewind_minutes=5, backlog=1))
    host, port = url.removeprefix("http://").split(":")
    for _ in range(3):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"GET /HA/haf/")  # half a request line, then a reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    httpx.get(f"{url}/healthz", timeout=10)  # the server still answers
    assert "Traceback" not in capfd.readouterr().err


def test_fits_sources_are_restamped_too(synthetic_frame_path, tmp_path):
    from service.devtools.replay import render_frame, scan_source
    from service.sources.gong.reader import read_gong

    path = synthetic_frame_path("hpln", site_letter="T")
    queues = scan_source(path.parent)
    assert list(queues) == ["T"]
    when = datetime(2026, 11, 21, 12, 3, 34, tzinfo=UTC)
    gong = read_gong(render_frame(queues["T"][0], when, "T"), filename="20261121120334Th.fits.fz")
    assert gong.obs_time.isot.startswith("2026-11-21T12:03:34")


def test_faults_are_injected_on_downloads(val_folder, serve):
    archive = ReplayArchive(val_folder, cadence_s=60, rewind_minutes=5, backlog=2,
                            faults=Faults(fail_every=2, truncate_every=3, short_file_every=4))
    url = serve(archive)
    frames = archive.published()

    def get(frame):
        return client.get(f"{url}/HA/haf/{frame.obs_time:%Y%m}/{frame.obs_time:%Y%m%d}/{frame.name}")

    with httpx.Client() as client:
        assert get(frames[0]).status_code == 200
        assert get(frames[0]).status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            get(frames[0])
    from service.sources.gong.reader import read_gong

    archive.faults = Faults(short_file_every=4)  # only the source-side fault from here
    with httpx.Client() as client:
        stub = get(frames[3])  # the 4th published frame is truncated at the source
    assert stub.status_code == 200 and int(stub.headers["content-length"]) == len(stub.content)
    with pytest.raises(FrameRejected) as err:
        read_gong(stub.content, filename=frames[3].name)
    assert err.value.reason in ("truncated", "corrupt_fits")
