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
