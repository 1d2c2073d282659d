"""Property: no request the app's own OpenAPI describes makes it answer 500, whatever the values.

For each operation in ``/openapi.json`` Hypothesis draws a value for each of its
parameters: sometimes one its schema allows, often a hostile one (times anywhere
in years 1 to 9999 with any offset, calendar edges favoured; base64 JSON cursors
of any shape and nesting; ids of any size and sign; any Unicode text). The app
runs under uvicorn on loopback, as in production; a server exception shows up
as a 500. ``/readyz`` may answer 503 (this feed is old, hence stale): that is its
contract.
"""

from __future__ import annotations

import base64
import calendar
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.app import create_app
from tests.feedapp import Feed, make_settings, populate, serve_app

EXAMPLES_PER_OPERATION = 100  # 20 for an operation without parameters (only headers vary)

pytestmark = [pytest.mark.slow]


def _operations() -> list[tuple[str, str, list[dict]]]:
    """(method, path template, parameters) of every operation the app publishes."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_settings(Path(tmp)))
        spec = app.openapi()
        app.state.engine.dispose()
    return [
        (method.upper(), path, op.get("parameters", []))
        for path, item in spec["paths"].items()
        for method, op in item.items()
    ]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    feed: Feed = populate(make_settings(tmp_path_factory.mktemp("fuzz"), admin_token="fuzz-token"), n=2)
    with serve_app(create_app(feed.settings)) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


# -- values -----------------------------------------------------------------------------------
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)  # any Unicode but lone surrogates
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def edge(lo: int, hi: int) -> st.SearchStrategy[int]:
    """An integer in [lo, hi], its ends drawn often: overflows live at the ends."""
    return st.sampled_from([lo, hi]) | st.integers(lo, hi)


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """An ISO 8601 time anywhere in years 1..9999 (often within a day of either end), any offset."""
    if draw(st.booleans()):
        year, month = draw(edge(1, 9999)), draw(edge(1, 12))
        day = draw(edge(1, calendar.monthrange(year, month)[1]))
        t = datetime(year, month, day, draw(edge(0, 23)), draw(edge(0, 59)), draw(edge(0, 59)))
    else:
        into = timedelta(seconds=draw(st.integers(0, 86399)))
        t = datetime.min + into if draw(st.booleans()) else datetime.max.replace(microsecond=0) - into
    offset = draw(st.none() | edge(-1439, 1439))
    if offset is not None:
        t = t.replace(tzinfo=timezone(timedelta(minutes=offset)))
    return t.isoformat()


@st.composite
def cursors(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["key", "json", "nested", "raw"]))
    if shape == "key":  # the shape this API hands out, hostile contents
        value = [draw(iso_times() | text), draw(st.integers() | st.floats() | st.booleans() | text),
                 draw(st.sampled_from(["asc", "desc"]) | text)]
        raw = json.dumps(value)
    elif shape == "json":
        raw = json.dumps(draw(json_values))
    elif shape == "nested":
        raw = "[" * draw(st.integers(1, 6000))
    else:
        return draw(text)
    return base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode().rstrip("=")


hostile = st.one_of(
    text,
    iso_times(),
    cursors(),
    st.integers().map(str),
    st.integers(2**63 - 2, 2**70).map(str),
    st.sampled_from(["1e400", "-1e400", "NaN", "inf", "-0", "0x10", "", " ", "\x00", "true", "%00"]),
    st.integers(1, 5000).map(lambda n: "9" * n),
)


def allowed(schema: dict) -> st.SearchStrategy[str]:
    """A value of the parameter's declared type and bounds (times for ``format: date-time``)."""
    if schema.get("format") == "date-time":
        return iso_times()
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "integer":
            return st.integers(option.get("minimum", -(2**70)), option.get("maximum", 2**70)).map(str)
        if "enum" in option:
            return st.sampled_from([str(v) for v in option["enum"]])
        if option.get("type") == "boolean":
            return st.sampled_from(["true", "false"])
    return st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64)


@st.composite
def requests(draw: st.DrawFn, path: str, parameters: list[dict]) -> tuple[str, dict, dict]:
    """One request: at most one parameter hostile, the others as their schema allows.

    (Were several hostile at once, the first refused would hide what the others reach.)
    """
    hostile_one = draw(st.sampled_from([None, *(p["name"] for p in parameters)]))
    query, headers = {}, {}
    for p in parameters:
        is_hostile = p["name"] == hostile_one
        if p["in"] == "query" and not is_hostile and not draw(st.integers(0, 3)):
            continue  # an optional parameter left out, one time in four
        value = draw(hostile if is_hostile else allowed(p.get("schema", {})))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(value, safe=""))
        else:
            query[p["name"]] = value
    if draw(st.booleans()):
        headers["If-None-Match"] = draw(st.sampled_from(['"x"', "*", 'W/"1", "2"']) | header_text)
    if draw(st.booleans()):
        headers["Authorization"] = "Bearer " + draw(st.sampled_from(["fuzz-token", "wrong"]) | header_text)
    return path, query, headers


def test_the_openapi_lists_the_whole_api() -> None:
    paths = {path for _, path, _ in OPERATIONS}
    assert {"/v1/magnetograms", "/v1/magnetograms/latest", "/v1/magnetograms/{product_id}.fits",
            "/v1/models/{version}/promote", "/v1/status", "/readyz"} <= paths


@pytest.mark.parametrize(("method", "path", "parameters"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_no_request_makes_a_500(client: httpx.Client, method: str, path: str, parameters: list[dict]) -> None:
    @settings(max_examples=EXAMPLES_PER_OPERATION if parameters else 20, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests(path, parameters))
    def no_500(request: tuple[str, dict, dict]) -> None:
        url, query, headers = request
        res = client.request(method, url, params=query, headers=headers)
        if path == "/readyz" and res.status_code == 503:
            assert res.json()["ready"] is False
            return
        assert res.status_code < 500, f"{method} {url} {query} -> {res.status_code}: {res.text[:300]}"

    no_500()
