"""A ``sunpy.net`` Fido client for the synmag feed; importing this module registers it.

>>> import service.fido  # doctest: +SKIP
>>> from sunpy.net import Fido, attrs as a  # doctest: +SKIP
>>> res = Fido.search(a.Time("2024-05-01 12:00", "2024-05-01 13:00"), a.Instrument("synmag"))  # doctest: +SKIP
>>> files = Fido.fetch(res)  # doctest: +SKIP
>>> sunpy.map.Map(files[0])  # doctest: +SKIP

The feed's base URL comes from ``SYNMAG_FEED_URL`` (read at each search) or the
client's ``feed_url`` attribute; the default is a local ``synmag serve``.
Searches page through ``GET /v1/magnetograms`` (time range half-open, UTC);
downloads go through parfive from each product's ``fits_url``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from astropy.time import Time
from sunpy.net import attrs as a
from sunpy.net.attr import AttrAnd, AttrOr, AttrWalker, DataAttr
from sunpy.net.base_client import BaseClient, QueryResponseTable

DEFAULT_FEED_URL = "http://127.0.0.1:8080"
INSTRUMENT = "synmag"
PAGE_LIMIT = 1000

walker = AttrWalker()


@walker.add_creator(AttrOr)
def _create_or(wlk: AttrWalker, tree: AttrOr) -> list[dict[str, Any]]:
    return [q for sub in tree.attrs for q in wlk.create(sub)]


@walker.add_creator(AttrAnd, DataAttr)
def _create_and(wlk: AttrWalker, tree: Any) -> list[dict[str, Any]]:
    params: dict[str, Any] = {}
    wlk.apply(tree, params)
    return [params]


@walker.add_applier(AttrAnd)
def _apply_and(wlk: AttrWalker, and_attr: AttrAnd, params: dict[str, Any]) -> None:
    for sub in and_attr.attrs:
        wlk.apply(sub, params)


@walker.add_applier(a.Time)
def _apply_time(wlk: AttrWalker, attr: a.Time, params: dict[str, Any]) -> None:
    params["start"] = attr.start.utc.isot + "Z"
    params["end"] = attr.end.utc.isot + "Z"


@walker.add_applier(a.Instrument, a.Source, a.Provider, a.Physobs)
def _apply_fixed(wlk: AttrWalker, attr: Any, params: dict[str, Any]) -> None:
    pass  # one instrument, one source: nothing to send (checked in _can_handle_query)


class SynmagClient(BaseClient):
    """Synthetic HMI-like line-of-sight magnetograms (Gauss) from the synmag feed.

    Parameters
    ----------
    feed_url : str, optional
        Base URL of a synmag service; default ``SYNMAG_FEED_URL`` or a local one.
    timeout : float
        Seconds per HTTP request of a search.
    """

    _attrs_values = {
        a.Instrument: [(INSTRUMENT, "Synthetic HMI-like magnetograms from GONG H-alpha (synmag)")],
        a.Source: [(INSTRUMENT, "synmag: GONG H-alpha -> LOS magnetogram (pix2pix, ONNX)")],
        a.Provider: [(INSTRUMENT, "A synmag service (SYNMAG_FEED_URL)")],
        a.Physobs: [("LOS_magnetic_field", "Line-of-sight magnetic field (Gauss)")],
    }

    def __init__(self, feed_url: str | None = None, timeout: float = 30.0) -> None:
        self._feed_url = feed_url
        self.timeout = timeout

    @property
    def feed_url(self) -> str:
        url = self._feed_url or os.environ.get("SYNMAG_FEED_URL") or DEFAULT_FEED_URL
        return url.rstrip("/")

    @feed_url.setter
    def feed_url(self, value: str | None) -> None:
        self._feed_url = value

    @property
    def info_url(self) -> str:
        return f"{self.feed_url}/docs"

    @classmethod
    def register_values(cls) -> dict[Any, list[tuple[str, str]]]:
        return cls._attrs_values

    @classmethod
    def _can_handle_query(cls, *query: Any) -> bool:
        types = {type(q) for q in query}
        if a.Time not in types or a.Instrument not in types:
            return False
        if not types <= {a.Time, a.Instrument, a.Source, a.Provider, a.Physobs}:
            return False
        for q in query:
            if isinstance(q, a.Instrument | a.Source | a.Provider):
                if str(q.value).lower() != INSTRUMENT:
                    return False
            if isinstance(q, a.Physobs) and str(q.value).lower() != "los_magnetic_field":
                return False
        return True

    def search(self, *query: Any) -> QueryResponseTable:
        """Products in the query's time range (paged through the API)."""
        rows: list[dict[str, Any]] = []
        with httpx.Client(timeout=self.timeout) as http:
            for params in walker.create(AttrAnd(query)):
                rows.extend(self._search_one(http, params))
        return QueryResponseTable(rows, client=self)

    def _search_one(self, http: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        query = {**params, "limit": PAGE_LIMIT}
        url = f"{self.feed_url}/v1/magnetograms"
        while True:
            res = http.get(url, params=query)
            if res.status_code != 200:
                raise ValueError(f"synmag feed {url} answered {res.status_code}: {res.text[:300]}")
            page = res.json()
            for item in page["items"]:
                t = Time(item["obs_time"].replace("Z", ""), scale="utc")
                out.append({
                    "Start Time": t,
                    "End Time": t,
                    "Instrument": "SYNMAG",
                    "Source": INSTRUMENT,
                    "Provider": INSTRUMENT,
                    "Physobs": "LOS_magnetic_field",
                    "Site": item["site"],
                    "Model": item["model_version"],
                    "id": item["id"],
                    # relative unless the feed sets SYNMAG_PUBLIC_URL: resolved against the feed
                    "url": urljoin(f"{self.feed_url}/", item["fits_url"]),
                    "fits_sha256": item["fits_sha256"],
                })
            if not page.get("next_cursor"):
                return out
            query = {**query, "cursor": page["next_cursor"]}

    @staticmethod
    def filename(row: Any) -> str:
        """Local file name of a product: observation time, site and model version."""
        t = row["Start Time"].datetime
        return f"synmag_{t:%Y%m%dT%H%M%S}_{row['Site']}_{row['Model']}.fits"

    def fetch(self, query_results: Any, *, path: Any = None, downloader: Any = None,
              wait: bool = True, **kwargs: Any) -> Any:
        """Download the FITS products of ``query_results`` with parfive."""
        from parfive import Downloader

        template = Path(path) if path is not None else Path.cwd() / "{file}"
        if "{file}" not in str(template):
            template = template / "{file}"
        own = downloader is None
        if own:
            downloader = Downloader(progress=kwargs.get("progress", False),
                                    overwrite=kwargs.get("overwrite", False))
        for row in query_results:
            target = Path(str(template).format(file=self.filename(row)))
            downloader.enqueue_file(row["url"], path=target.parent, filename=target.name)
        if own or wait:
            return downloader.download()
        return None
