"""The feed API over HTTP on loopback: a real app, SQLite and a file store with real products."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from astropy.io import fits

from service.api.app import create_app
from service.api.state import AppState
from tests.feedapp import MODEL_VERSION, Feed, make_settings, populate, serve_app

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    return populate(make_settings(tmp_path_factory.mktemp("feed"), admin_token=TOKEN), n=4)


@pytest.fixture(scope="module")
def api(feed: Feed) -> Iterator[httpx.Client]:
    state = AppState()
    state.set_model(MODEL_VERSION, ["CPUExecutionProvider"])
    with serve_app(create_app(feed.settings, state)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def test_latest_is_the_newest_product_with_links(api: httpx.Client, feed: Feed) -> None:
    body = api.get("/v1/magnetograms/latest").json()
    assert body["id"] == feed.product_ids[-1]
    assert body["fits_url"].endswith(f"/v1/magnetograms/{body['id']}.fits")
    assert body["png_url"] and body["input_png_url"]
    assert body["provenance"]["model_version"] == MODEL_VERSION
    assert body["provenance"]["polarity_sign"] == -1  # cycle-24 model, cycle-25 frame
    assert body["previous_id"] == feed.product_ids[-2] and body["next_id"] is None


def test_fits_link_gives_the_product_in_gauss(api: httpx.Client) -> None:
    latest = api.get("/v1/magnetograms/latest").json()
    res = api.get(latest["fits_url"])
    assert res.status_code == 200
    with fits.open(io.BytesIO(res.content)) as hdul:
        assert hdul[0].data.shape == (1024, 1024)
        assert hdul[0].header["BUNIT"] == "Gauss"
        assert np.nanmax(np.abs(hdul[0].data)) <= 200


def test_files_have_etag_cache_headers_and_304(api: httpx.Client, feed: Feed) -> None:
    pid = feed.product_ids[0]
    res = api.get(f"/v1/magnetograms/{pid}.png")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    assert res.content[:8] == b"\x89PNG\r\n\x1a\n"
    etag = res.headers["etag"]
    assert "immutable" in res.headers["cache-control"]
    again = api.get(f"/v1/magnetograms/{pid}.png", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    assert api.get(f"/v1/magnetograms/{pid}.fits", headers={"If-None-Match": etag}).status_code == 200


def test_input_png_is_the_model_input(api: httpx.Client, feed: Feed) -> None:
    from PIL import Image

    res = api.get(f"/v1/magnetograms/{feed.product_ids[0]}/input.png")
    assert res.status_code == 200
    img = np.asarray(Image.open(io.BytesIO(res.content)))
    assert img.shape == (1024, 1024)
    assert img[512, 512] > 100 and img[5, 5] == 0  # disk bright, corners off-disk


def test_range_query_pages_with_a_cursor(api: httpx.Client, feed: Feed) -> None:
    params = {"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z", "limit": 3}
    first = api.get("/v1/magnetograms", params=params).json()
    assert [p["id"] for p in first["items"]] == feed.product_ids[:3]
    second = api.get("/v1/magnetograms", params={**params, "cursor": first["next_cursor"]}).json()
    assert [p["id"] for p in second["items"]] == feed.product_ids[3:]
    assert second["next_cursor"] is None
    assert api.get(first["next_url"]).json()["items"] == second["items"]


def test_range_is_half_open_and_zone_aware(api: httpx.Client, feed: Feed) -> None:
    # 14:10+02:00 is 12:10 UTC: the second product is excluded (end is exclusive).
    body = api.get("/v1/magnetograms", params={"end": "2024-05-01T14:10:00+02:00"}).json()
    assert [p["id"] for p in body["items"]] == feed.product_ids[:1]
    desc = api.get("/v1/magnetograms", params={"order": "desc", "limit": 1}).json()
    assert desc["items"][0]["id"] == feed.product_ids[-1]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"start": "not-a-time"}, 422, "start: not an ISO 8601 time"),
        ({"end": "2024-13-01"}, 422, "end: not an ISO 8601 time"),
        ({"start": "2024-05-02T00:00Z", "end": "2024-05-01T00:00Z"}, 400, "end must be after start"),
        ({"cursor": "garbage"}, 400, "cursor"),
        ({"limit": 0}, 422, "limit"),
    ],
)
def test_bad_parameters_say_what_is_wrong(api: httpx.Client, params: dict, status: int, words: str) -> None:
    res = api.get("/v1/magnetograms", params=params)
    assert res.status_code == status
    assert words in res.text


def test_unknown_product_is_404(api: httpx.Client) -> None:
    for path in ("/v1/magnetograms/999999", "/v1/magnetograms/999999.fits", "/v1/magnetograms/999999.png"):
        assert api.get(path).status_code == 404


def test_models_list_production_and_loaded(api: httpx.Client) -> None:
    body = api.get("/v1/models").json()
    assert body["production"] == MODEL_VERSION
    assert body["loaded"] == MODEL_VERSION and body["active_providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic eDp5"}, 401)],
)
def test_admin_routes_need_the_token(api: httpx.Client, headers: dict, status: int) -> None:
    for path in (f"/v1/models/{MODEL_VERSION}/promote", "/v1/models/rollback"):
        assert api.post(path, headers=headers).status_code == status


def test_admin_promote_with_token(api: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    res = api.post(f"/v1/models/{MODEL_VERSION}/promote", headers=auth, params={"force": "true"})
    assert res.status_code == 200 and res.json()["production"] == MODEL_VERSION
    assert api.post("/v1/models/nope/promote", headers=auth).status_code == 404
    # Only one version ever in production: nothing to roll back to.
    res = api.post("/v1/models/rollback", headers=auth)
    assert res.status_code == 409 and "no earlier production version" in res.text


def test_admin_is_off_without_a_configured_token(tmp_path: Path, feed: Feed) -> None:
    settings = feed.settings.model_copy(update={"admin_token": None})
    with serve_app(create_app(settings)) as url:
        res = httpx.post(f"{url}/v1/models/{MODEL_VERSION}/promote",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 403 and "admin is off" in res.text


def test_health_ready_metrics_viewer_openapi(api: httpx.Client) -> None:
    assert api.get("/healthz").json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["model"]["ok"]
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in ("synmag_products_total", "synmag_frames_rejected_total", "synmag_stage_seconds",
                 "synmag_end_to_end_latency_seconds", "synmag_last_product_timestamp_seconds",
                 "synmag_model_info"):
        assert f"# TYPE {name} " in metrics.text, name
    page = api.get("/")
    assert page.headers["content-type"].startswith("text/html") and "<html" in page.text
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/magnetograms/latest", "/v1/magnetograms", "/v1/models"} <= set(paths)


def test_readyz_reports_why_it_is_not_ready(tmp_path: Path, feed: Feed) -> None:
    stale = feed.settings.model_copy(update={"stale_after_s": 1e-3})
    with serve_app(create_app(stale, AppState())) as url:
        res = httpx.get(f"{url}/readyz")
    assert res.status_code == 503
    checks = res.json()["checks"]
    assert not checks["model"]["ok"] and "no model loaded" in checks["model"]["detail"]
    assert not checks["feed"]["ok"] and "stale" in checks["feed"]["detail"]
    assert checks["database"]["ok"] and checks["store"]["ok"]


def test_empty_feed_latest_is_404(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    populate(settings, n=0)
    with serve_app(create_app(settings)) as url:
        res = httpx.get(f"{url}/v1/magnetograms/latest")
    assert res.status_code == 404 and "no magnetogram" in res.text


def test_the_metric_table_is_served_as_the_service_defines_it(api: httpx.Client) -> None:
    from service.science.metric_table import METRICS

    rows = api.get("/v1/metric-table").json()
    assert [r["name"] for r in rows] == [m.name for m in METRICS]
    assert {r["name"] for r in rows if r["live"]} >= {"r_bin8", "psnr"}
