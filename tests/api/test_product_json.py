"""The product JSON's model kind, prior and layers (issues 14, 15), and the one serializer (issue 13)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

import httpx
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from service.api.app import create_app
from tests.feedapp import FEED_START, Feed, make_settings, populate, serve_app

NOWCAST_START = FEED_START + timedelta(days=1)


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Feed, Feed]:
    """H-alpha-only products without layers, then nowcasts (prior 3.2 h old) with SIGMA and CONFIDENCE."""
    settings = make_settings(tmp_path_factory.mktemp("kinds"))
    halpha = populate(settings, n=2, with_input=False)
    nowcast = populate(settings, n=2, start=NOWCAST_START, with_input=False, prior_age_h=3.2, layers=True)
    return halpha, nowcast


@pytest.fixture(scope="module")
def api(feed: tuple[Feed, Feed]) -> Iterator[httpx.Client]:
    with serve_app(create_app(feed[0].settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def test_a_nowcast_names_its_prior(api: httpx.Client, feed) -> None:
    body = api.get("/v1/magnetograms/latest").json()
    assert body["id"] == feed[1].product_ids[-1] and body["model_kind"] == "nowcast"
    assert body["prior"] == {"obs_time": "2024-05-02T08:58:00Z", "age_h": 3.2, "source": "hmi.M_720s_nrt",
                             "sha256": "ef" * 32}
    assert body["prior_line"] == "prior: HMI 08:58 UT, 3.2 h old" and body["prior_note"] is None


def test_an_halpha_product_says_why_it_has_no_prior(api: httpx.Client, feed) -> None:
    body = api.get(f"/v1/magnetograms/{feed[0].product_ids[0]}").json()
    assert body["model_kind"] == "halpha" and body["prior"] is None
    assert body["prior_line"] == "no prior: H-alpha only"
    assert body["prior_note"] == "no prior source configured (SYNMAG_PRIOR_SOURCE=none)"


def test_the_list_carries_kind_and_prior_line(api: httpx.Client) -> None:
    items = api.get("/v1/magnetograms").json()["items"]
    assert [i["model_kind"] for i in items] == ["halpha", "halpha", "nowcast", "nowcast"]
    assert items[-1]["prior_line"].startswith("prior: HMI ")


def test_layers_are_linked_when_the_fits_has_them(api: httpx.Client, feed) -> None:
    pid = feed[1].product_ids[0]
    layers = api.get(f"/v1/magnetograms/{pid}").json()["layers"]
    root = f"/v1/magnetograms/{pid}/layers"
    assert layers == {"field": f"{root}/field.png", "sigma": f"{root}/sigma.png",
                      "confidence": f"{root}/confidence.png"}


def test_a_product_without_layers_links_only_its_field(api: httpx.Client, feed) -> None:
    pid = feed[0].product_ids[0]
    layers = api.get(f"/v1/magnetograms/{pid}").json()["layers"]
    assert layers["field"].endswith("/field.png") and layers["sigma"] is None and layers["confidence"] is None
    res = api.get(f"/v1/magnetograms/{pid}/layers/confidence.png")
    assert res.status_code == 404 and "no CONFIDENCE layer" in res.json()["detail"]


def _png(api: httpx.Client, url: str) -> np.ndarray:
    res = api.get(url)
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(res.content)))


def _hdu(api: httpx.Client, pid: int, name: str | int) -> np.ndarray:
    with fits.open(io.BytesIO(api.get(f"/v1/magnetograms/{pid}.fits").content)) as hdul:
        return np.asarray(hdul[name].data)


def test_the_confidence_png_is_the_fits_layer_north_up(api: httpx.Client, feed) -> None:
    pid = feed[1].product_ids[0]
    png = _png(api, f"/v1/magnetograms/{pid}/layers/confidence.png")
    conf = _hdu(api, pid, "CONFIDENCE")[::-1]  # FITS row 0 = south; a PNG's first row is its top
    assert png.shape == (1024, 1024, 2)
    on = np.isfinite(conf)
    assert np.array_equal(png[..., 1] == 255, on)  # transparent off the disk
    assert np.abs(png[..., 0][on] / 255.0 - conf[on]).max() <= 0.5 / 255 + 1e-6


def test_the_sigma_png_is_gauss(api: httpx.Client, feed) -> None:
    pid = feed[1].product_ids[0]
    png = _png(api, f"/v1/magnetograms/{pid}/layers/sigma.png")
    sigma = _hdu(api, pid, "SIGMA")[::-1]
    on = np.isfinite(sigma)
    assert np.abs(png[..., 0][on] - np.minimum(np.rint(sigma[on]), 255)).max() == 0


def test_the_field_png_is_blue_where_negative_and_red_where_positive(api: httpx.Client, feed) -> None:
    pid = feed[0].product_ids[0]
    rgba = _png(api, f"/v1/magnetograms/{pid}/layers/field.png").astype(int)
    field = _hdu(api, pid, 0)[::-1]
    strong_pos, strong_neg = field > 150, field < -150
    assert strong_pos.any() and strong_neg.any()
    assert (rgba[..., 0][strong_pos] > rgba[..., 2][strong_pos]).all()
    assert (rgba[..., 2][strong_neg] > rgba[..., 0][strong_neg]).all()
    assert (rgba[..., 3][~np.isfinite(field)] == 0).all()


def test_a_layer_answers_304_to_its_etag(api: httpx.Client, feed) -> None:
    url = f"/v1/magnetograms/{feed[1].product_ids[0]}/layers/sigma.png"
    etag = api.get(url).headers["etag"]
    again = api.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_an_unknown_layer_is_refused(api: httpx.Client, feed) -> None:
    assert api.get(f"/v1/magnetograms/{feed[1].product_ids[0]}/layers/mask.png").status_code == 422


def test_the_cli_and_the_api_give_the_same_product(api: httpx.Client, feed, monkeypatch, capsys) -> None:
    """``synmag products --json`` and the API's product JSON come from one serializer."""
    import json

    from service.cli import main
    from service.settings import get_settings

    settings = feed[0].settings
    monkeypatch.setenv("SYNMAG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SYNMAG_STORE_URL", settings.store_url)
    get_settings.cache_clear()
    try:
        assert main(["products", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    cli = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    for pid in (feed[0].product_ids[0], feed[1].product_ids[0]):
        body = api.get(f"/v1/magnetograms/{pid}").json()
        flat = {**body["provenance"], **body}
        row = cli[pid]
        for key in ("id", "obs_time", "site", "model_version", "model_kind", "preprocess_version", "polarity_sign",
                    "prior", "prior_note", "prior_line", "input_file", "input_url", "input_sha256", "fits_sha256"):
            assert row[key] == flat[key], key
        assert row["polarity_sign"] == -1  # the field the CLI lacked before
