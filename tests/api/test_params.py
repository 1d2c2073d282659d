"""The audit's hostile requests (issue 19, items 3 and 4): each answers 4xx with a reason, never 500.

Over HTTP on loopback (uvicorn, as in production) against a real SQLite feed with
real products.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from service.api.app import create_app
from tests.feedapp import Feed, make_settings, populate, serve_app

INT64_PLUS_ONE = "9223372036854775808"


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    return populate(make_settings(tmp_path_factory.mktemp("params")), n=2)


@pytest.fixture(scope="module")
def client(feed: Feed) -> Iterator[httpx.Client]:
    with serve_app(create_app(feed.settings)) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def search(client: httpx.Client, **params: str):
    return client.get("/v1/magnetograms", params=params)


# -- times: within the GONG era, and no overflow on the way there --------------------------
def test_start_at_the_end_of_year_9999_west_of_utc_is_422(client: httpx.Client) -> None:
    res = search(client, start="9999-12-31T23:59:59-01:00")
    assert res.status_code == 422
    assert "start" in res.json()["detail"] and "1995-01-01 to 2100-01-01" in res.json()["detail"]


def test_start_in_year_1_east_of_utc_is_422(client: httpx.Client) -> None:
    res = search(client, start="0001-01-01T00:00:00+01:00")
    assert res.status_code == 422
    assert "outside the accepted range" in res.json()["detail"]


def test_end_before_gong_is_422(client: httpx.Client) -> None:
    res = search(client, end="1994-12-31T23:59:59Z")
    assert res.status_code == 422 and res.json()["detail"].startswith("end:")


def test_time_of_a_thousand_characters_is_422(client: httpx.Client) -> None:
    assert search(client, start="2024-05-01T12:00:00" + "0" * 1000).status_code == 422


def test_times_at_the_edges_of_the_era_are_accepted(client: httpx.Client) -> None:
    res = search(client, start="1995-01-01T00:00:00Z", end="2099-12-31T23:59:59+00:00")
    assert res.status_code == 200 and res.json()["count"] == 2


# -- cursors: size-limited, type-checked ----------------------------------------------------
def test_cursor_of_5000_nested_brackets_is_400(client: httpx.Client) -> None:
    res = search(client, cursor=cursor_of("[" * 5000))
    assert res.status_code == 400 and res.json()["detail"].startswith("cursor:")


def test_short_cursor_of_nested_brackets_is_400(client: httpx.Client) -> None:
    assert search(client, cursor=cursor_of("[" * 140)).status_code == 400  # under the size limit


@pytest.mark.parametrize("pid", ["10" + "0" * 30, "-1180591620717411303424", "1e400", "true", "1.5", '"7"'])
def test_cursor_with_an_id_that_is_not_a_64_bit_id_is_400(client: httpx.Client, pid: str) -> None:
    res = search(client, cursor=cursor_of(f'["2024-05-01T12:00:00+00:00", {pid}, "asc"]'))
    assert res.status_code == 400 and "not a cursor this API handed out" in res.json()["detail"]


def test_cursor_with_a_naive_time_is_400(client: httpx.Client) -> None:
    assert search(client, cursor=cursor_of('["2024-05-01T12:00:00", 1, "asc"]')).status_code == 400


def test_cursor_with_a_year_9999_time_is_400(client: httpx.Client) -> None:
    assert search(client, cursor=cursor_of('["9999-12-31T23:59:59-01:00", 1, "asc"]')).status_code == 400


def test_cursor_of_non_ascii_text_is_400(client: httpx.Client) -> None:
    assert search(client, cursor="é" * 10).status_code == 400


def test_cursor_for_the_other_order_says_so(client: httpx.Client) -> None:
    first = search(client, limit="1").json()
    res = search(client, limit="1", order="desc", cursor=first["next_cursor"])
    assert res.status_code == 400 and "order=asc" in res.json()["detail"]


def test_cursor_handed_out_still_pages(client: httpx.Client, feed: Feed) -> None:
    first = search(client, limit="1").json()
    second = search(client, limit="1", cursor=first["next_cursor"]).json()
    assert [i["id"] for i in first["items"] + second["items"]] == feed.product_ids
    assert json.loads(base64.urlsafe_b64decode(first["next_cursor"] + "==="))[1] == feed.product_ids[0]


# -- ids: within signed 64 bits ---------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", ".fits", ".png", "/input.png"])
def test_id_past_int64_is_422(client: httpx.Client, suffix: str) -> None:
    res = client.get(f"/v1/magnetograms/{INT64_PLUS_ONE}{suffix}")
    assert res.status_code == 422 and "product_id" in res.text


@pytest.mark.parametrize("suffix", ["", ".fits", ".png", "/input.png"])
def test_id_of_largest_int64_is_404(client: httpx.Client, suffix: str) -> None:
    assert client.get(f"/v1/magnetograms/{2**63 - 1}{suffix}").status_code == 404


def test_id_of_5000_digits_is_404(client: httpx.Client) -> None:
    assert client.get("/v1/magnetograms/" + "9" * 5000).status_code == 404


def test_id_zero_is_422(client: httpx.Client) -> None:
    assert client.get("/v1/magnetograms/0").status_code == 422


# -- other parameters ---------------------------------------------------------------------------
def test_model_with_a_nul_character_is_422(client: httpx.Client) -> None:
    assert client.get("/v1/magnetograms/latest", params={"model": "a\x00b"}).status_code == 422


def test_model_longer_than_the_registry_column_is_422(client: httpx.Client) -> None:
    assert search(client, model="m" * 65).status_code == 422


def test_limit_of_10_to_the_30_is_422(client: httpx.Client) -> None:
    assert search(client, limit="1" + "0" * 30).status_code == 422


def test_order_other_than_asc_or_desc_is_422(client: httpx.Client) -> None:
    assert search(client, order="sideways").status_code == 422


def test_promote_a_version_with_a_nul_character_is_4xx(client: httpx.Client) -> None:
    assert 400 <= client.post("/v1/models/a%00b/promote").status_code < 500


# -- links: never from the Host header ---------------------------------------------------------
EVIL = {"Host": "evil.example"}


def test_latest_links_ignore_the_host_header(client: httpx.Client, feed: Feed) -> None:
    body = client.get("/v1/magnetograms/latest", headers=EVIL).json()
    assert body["fits_url"] == f"/v1/magnetograms/{feed.product_ids[-1]}.fits"
    assert "evil" not in json.dumps(body)


def test_detail_links_ignore_the_host_header(client: httpx.Client, feed: Feed) -> None:
    body = client.get(f"/v1/magnetograms/{feed.product_ids[0]}", headers=EVIL).json()
    assert body["png_url"] == f"/v1/magnetograms/{feed.product_ids[0]}.png"
    assert "evil" not in json.dumps(body)


def test_page_links_ignore_the_host_header(client: httpx.Client) -> None:
    body = client.get("/v1/magnetograms", params={"limit": 1}, headers=EVIL).json()
    assert body["next_url"].startswith("/v1/magnetograms?")
    assert "evil" not in json.dumps(body)


def test_links_use_the_configured_public_url(feed: Feed, tmp_path) -> None:
    settings = feed.settings.model_copy(update={"public_url": "https://feed.example.org/"})
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as c:
        body = c.get("/v1/magnetograms/latest", headers=EVIL).json()
        page = c.get("/v1/magnetograms", params={"limit": 1}, headers=EVIL).json()
    assert body["fits_url"] == f"https://feed.example.org/v1/magnetograms/{feed.product_ids[-1]}.fits"
    assert page["next_url"].startswith("https://feed.example.org/v1/magnetograms?")
