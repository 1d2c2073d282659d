"""The web viewer in headless Chromium (Debian's, through Playwright; never downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from service.api.app import create_app
from tests.conftest import require
from tests.feedapp import Feed, make_settings, populate, serve_app

pytestmark = [pytest.mark.servers, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Feed]]:
    feed = populate(make_settings(tmp_path_factory.mktemp("viewer")), n=3)
    with serve_app(create_app(feed.settings)) as url:
        yield url, feed


@pytest.fixture
def page() -> Iterator[object]:
    require(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _image_loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_viewer_shows_latest_and_steps_back(viewer: tuple[str, Feed], page) -> None:
    url, feed = viewer
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    latest = feed.product_ids[-1]
    page.wait_for_function(
        f"document.getElementById('product-img').dataset.productId === '{latest}'", timeout=20000)
    page.wait_for_function("document.getElementById('product-img').complete", timeout=20000)
    assert _image_loaded(page, "#product-img")
    assert page.inner_text("#obs-time").startswith(feed.obs_times[-1].strftime("%Y-%m-%dT%H:%M"))
    assert "20240501" in page.inner_text("#provenance")  # the input file name
    assert page.is_disabled("#next") and not page.is_disabled("#prev")

    page.click("#prev")
    page.wait_for_function(
        f"document.getElementById('product-img').dataset.productId === '{feed.product_ids[-2]}'",
        timeout=20000)
    assert page.inner_text("#obs-time").startswith(feed.obs_times[-2].strftime("%Y-%m-%dT%H:%M"))
    page.wait_for_function("document.getElementById('input-img').complete", timeout=30000)
    assert _image_loaded(page, "#input-img")
    assert not page.is_disabled("#next")
    assert errors == []


# -- the empty state: say what is missing, no "loading..." forever, no broken images -------
def _empty_feed(tmp_path, state=None):
    settings = make_settings(tmp_path)
    populate(settings, n=0)  # migrated, a production model registered, no product
    return settings, create_app(settings, state)


def _wait_empty(page) -> str:
    page.wait_for_selector("#empty", state="visible", timeout=20000)
    page.wait_for_function("document.querySelectorAll('#empty-reasons li').length > 0", timeout=20000)
    return page.inner_text("#empty")


def test_empty_viewer_says_there_is_no_product_and_why(tmp_path, page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _, app = _empty_feed(tmp_path)
    with serve_app(app) as url:
        page.goto(url + "/")
        text = _wait_empty(page)
        assert "No magnetogram yet" in text
        assert "no observation minute has been processed yet" in text  # an API-only process
        assert page.inner_text("#obs-time") == "no product"
        assert not page.is_visible("#product-img") and not page.is_visible("#input-img")
        assert page.is_disabled("#prev") and page.is_disabled("#next")
    assert errors == []


def test_empty_viewer_names_the_missing_model_and_the_unreachable_archive(tmp_path, page) -> None:
    from datetime import UTC, datetime

    from service.api.state import AppState

    state = AppState(pipeline="running")  # what synmag serve's pipeline process reported
    state.tick_done(datetime.now(UTC), True, "archive listing failed: connection refused")
    _, app = _empty_feed(tmp_path, state)
    with serve_app(app) as url:
        page.goto(url + "/")
        text = _wait_empty(page)
    assert "no model loaded: the production version feedtest-1 is not loaded here" in text
    assert "the last scheduler tick failed: archive listing failed: connection refused" in text


def test_empty_viewer_shows_the_first_product_when_it_arrives(tmp_path, page) -> None:
    settings, app = _empty_feed(tmp_path)
    with serve_app(app) as url:
        page.goto(url + "/")
        _wait_empty(page)
        feed = populate(settings, n=1)
        page.wait_for_function(
            f"document.getElementById('product-img').dataset.productId === '{feed.product_ids[0]}'",
            timeout=30000)
        page.wait_for_function("document.getElementById('product-img').complete", timeout=20000)
        assert _image_loaded(page, "#product-img")
        assert not page.is_visible("#empty")


# -- the API docs render with the network cut off ------------------------------------------
def _offline(page, url: str) -> list[str]:
    """Refuse every request that leaves the app's own origin; the refused URLs."""
    refused: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(url):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return refused


def test_swagger_ui_renders_offline(viewer: tuple[str, Feed], page) -> None:
    url, _ = viewer
    refused = _offline(page, url)
    page.goto(url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30000)
    assert "synmag feed" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock", timeout=30000)
    assert page.locator(".opblock").count() >= 10  # every operation listed
    assert refused == []


def test_redoc_is_off(viewer: tuple[str, Feed]) -> None:
    import httpx

    url, _ = viewer
    assert httpx.get(url + "/redoc").status_code == 404  # its bundle fetches a logo from a CDN


def test_verification_table_rows_come_from_the_metric_table(tmp_path, page) -> None:
    from service.db import Product, make_engine, session_scope
    from service.science.metric_table import live_metrics

    feed = populate(make_settings(tmp_path), n=1)
    engine = make_engine(feed.settings)
    scores = {m.name: 0.5 for m in live_metrics()}
    with session_scope(engine) as s:
        s.get(Product, feed.product_ids[0]).verification = {
            "status": "scored", "model": scores, "zero": scores,
            "truth": {"origin": "hmi.M_720s_nrt", "obs_time": "2024-05-01T12:00:00+00:00"}}
    engine.dispose()
    with serve_app(create_app(feed.settings)) as url:
        page.goto(url + "/")
        page.wait_for_selector("#verification-table", timeout=20000)
        text = page.inner_text("#verification")
    for metric in live_metrics():
        assert metric.label in text
    assert "truth: hmi.M_720s_nrt 2024-05-01T12:00:00+00:00" in text


# -- the prior line and the confidence toggle (issues 14, 15) --------------------------------
@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Feed]]:
    """An H-alpha-only product without layers, then a nowcast with SIGMA and CONFIDENCE (the newest)."""
    from datetime import timedelta

    from tests.feedapp import FEED_START

    settings = make_settings(tmp_path_factory.mktemp("layered"))
    populate(settings, n=1, with_input=False)
    feed = populate(settings, n=1, start=FEED_START + timedelta(hours=1), with_input=False, prior_age_h=3.2, layers=True)
    with serve_app(create_app(feed.settings)) as url:
        yield url, feed


def _expected_greyed(url: str, pid: int, threshold: float) -> int:
    """On-disk pixels whose CONFIDENCE layer (as its PNG carries it) is below ``threshold``."""
    import io

    import httpx
    import numpy as np
    from PIL import Image

    la = np.asarray(Image.open(io.BytesIO(httpx.get(f"{url}/v1/magnetograms/{pid}/layers/confidence.png").content)))
    return int(((la[..., 1] > 0) & (la[..., 0] < threshold * 255)).sum())


def _wait_product(page, pid: int) -> None:
    page.wait_for_function(f"document.getElementById('product-img').dataset.productId === '{pid}'", timeout=20000)


def test_viewer_shows_the_prior_line(layered, page) -> None:
    url, feed = layered
    page.goto(url + "/")
    _wait_product(page, feed.product_ids[0])
    assert page.inner_text("#prior-line") == "prior: HMI 09:48 UT, 3.2 h old"
    page.click("#prev")
    page.wait_for_function("document.getElementById('prior-line').textContent === 'no prior: H-alpha only'",
                           timeout=20000)


def test_the_quicklook_is_unchanged_until_the_toggle_is_on(layered, page) -> None:
    url, feed = layered
    page.goto(url + "/")
    _wait_product(page, feed.product_ids[0])
    assert page.is_visible("#product-img") and not page.is_visible("#conf-canvas")
    assert page.get_attribute("#product-img", "src").endswith(f"/v1/magnetograms/{feed.product_ids[0]}.png")
    assert not page.is_checked("#conf-toggle") and not page.is_disabled("#conf-toggle")


def test_the_toggle_greys_out_pixels_below_the_chosen_confidence(layered, page) -> None:
    url, feed = layered
    pid = feed.product_ids[0]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    _wait_product(page, pid)
    page.check("#conf-toggle")
    page.wait_for_function("document.getElementById('conf-canvas').dataset.threshold === '0.80'", timeout=20000)
    assert page.is_visible("#conf-canvas") and not page.is_visible("#product-img")
    at_080 = int(page.get_attribute("#conf-canvas", "data-greyed"))
    assert at_080 == _expected_greyed(url, pid, 0.80) > 0
    page.eval_on_selector("#conf-threshold", "el => { el.value = '0.9'; el.dispatchEvent(new Event('input')); }")
    page.wait_for_function("document.getElementById('conf-canvas').dataset.threshold === '0.90'", timeout=20000)
    at_090 = int(page.get_attribute("#conf-canvas", "data-greyed"))
    assert at_090 == _expected_greyed(url, pid, 0.90) > at_080
    assert page.inner_text("#conf-value") == "0.90"
    grey = page.eval_on_selector(  # a greyed pixel is grey: the east limb has the lowest confidence
        "#conf-canvas", "c => Array.from(c.getContext('2d').getImageData(100, 512, 1, 1).data)")
    assert grey == [150, 150, 150, 255]
    page.uncheck("#conf-toggle")
    assert page.is_visible("#product-img") and not page.is_visible("#conf-canvas")
    assert errors == []


def test_a_product_without_layers_disables_the_toggle(layered, page) -> None:
    url, feed = layered
    page.goto(url + "/")
    _wait_product(page, feed.product_ids[0])
    page.click("#prev")
    page.wait_for_function("document.getElementById('conf-toggle').disabled", timeout=20000)
    assert page.inner_text("#conf-note") == "no uncertainty layers in this product"
