"""The Fido client against a running feed: search by time and instrument, fetch FITS, open as a map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.api.app import create_app
from tests.feedapp import Feed, make_settings, populate, serve_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def feed_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Feed]]:
    feed = populate(make_settings(tmp_path_factory.mktemp("fido")), n=3, with_input=False)
    with serve_app(create_app(feed.settings)) as url:
        yield url, feed


@pytest.fixture(autouse=True)
def close_parfive_loops() -> Iterator[None]:
    """Close the event loops parfive leaves open.

    ``parfive.Downloader.download()`` (2.3) makes a new loop, installs signal
    handlers on it and never closes it; pytest reports the loop and its sockets
    as unraisable ResourceWarnings when they are collected at exit.
    """
    import asyncio
    import gc

    yield
    for obj in gc.get_objects():
        # type(), not isinstance(): isinstance reads obj.__class__, and some module-level
        # objects (torch's deprecated reduce_op) warn when that attribute is read.
        if issubclass(type(obj), asyncio.AbstractEventLoop) and not obj.is_running() and not obj.is_closed():
            obj.close()


@pytest.fixture
def fido(monkeypatch: pytest.MonkeyPatch, feed_url: tuple[str, Feed]):
    from sunpy.net import Fido
    from sunpy.net.vso import VSOClient

    import service.fido  # noqa: F401 - importing registers the client

    monkeypatch.setenv("SYNMAG_FEED_URL", feed_url[0])
    # The VSO client claims every Time+Instrument query and needs the internet,
    # which tests do not have; without it Fido asks only the clients on loopback.
    monkeypatch.setattr(Fido, "registry", {k: v for k, v in Fido.registry.items() if k is not VSOClient})
    return Fido


def test_fido_search_and_fetch_open_as_maps(fido, feed_url: tuple[str, Feed], tmp_path: Path) -> None:
    import sunpy.map
    from sunpy.net import attrs as a

    _, feed = feed_url
    res = fido.search(a.Time("2024-05-01 12:05", "2024-05-01 13:00"), a.Instrument("synmag"))
    table = res[0]
    assert list(table["id"]) == feed.product_ids[1:]  # 12:00 is before the range
    files = fido.fetch(res, path=tmp_path / "{file}", progress=False)
    assert not files.errors and len(files) == 2
    m = sunpy.map.Map(sorted(files)[0])
    assert m.data.shape == (1024, 1024)
    assert m.unit.to_string() in ("G", "Gauss")
    assert m.date.isot.startswith("2024-05-01T12:10")
    assert m.coordinate_frame.name == "helioprojective"
    assert np.isnan(m.data[0, 0]) and np.isfinite(m.data[512, 512])


def test_fido_ignores_other_instruments(fido) -> None:
    from sunpy.net import attrs as a

    from service.fido import SynmagClient

    assert SynmagClient._can_handle_query(a.Time("2024-05-01", "2024-05-02"), a.Instrument("synmag"))
    assert not SynmagClient._can_handle_query(a.Time("2024-05-01", "2024-05-02"), a.Instrument("hmi"))
    assert not SynmagClient._can_handle_query(a.Instrument("synmag"))


def test_client_feed_url_attribute_wins(feed_url: tuple[str, Feed]) -> None:
    from sunpy.net import attrs as a

    from service.fido import SynmagClient

    client = SynmagClient(feed_url=feed_url[0])
    table = client.search(a.Time("2024-05-01 12:00", "2024-05-01 12:15"), a.Instrument("synmag"))
    assert len(table) == 2
