"""The stand-in JSOC: drms's own requests answered as JSOC answers them, level-1 files that astropy reads."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from service.devtools.hmi_writer import (
    exported_fits_bytes,
    level1_geometry,
    level1_image,
    level1_keywords,
    t_rec_slot,
)
from service.devtools.jsoc_standin import JsocStandin, serve_in_thread
from tests.hmi_days import T0, bipole_field, blob_center, write_days


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[JsocStandin, str]]:
    write_days(tmp_path / "days", 3)
    st = JsocStandin(tmp_path / "days", naxis=256)
    server, url = serve_in_thread(st)
    yield st, url
    server.shutdown()
    server.server_close()


def drms_client(url: str):  # noqa: ANN201 - drms has no types
    import drms
    from drms.config import ServerConfig

    return drms.Client(ServerConfig(name="standin", cgi_baseurl=f"{url}/cgi-bin/ajax/", cgi_jsoc_info="jsoc_info",
                                    http_download_baseurl=f"{url}/"))


def rs_list(url: str, ds: str, key: str = "T_REC,T_OBS,QUALITY", **extra: str) -> dict:
    from urllib.parse import urlencode

    query = urlencode({"op": "rs_list", "ds": ds, "key": key, **extra})
    with urllib.request.urlopen(f"{url}/cgi-bin/ajax/jsoc_info?{query}") as res:
        return json.loads(res.read())


def test_keyword_values_are_strings_as_jsoc_sends_them(standin: tuple[JsocStandin, str]) -> None:
    _, url = standin
    answer = rs_list(url, "hmi.M_720s[2014.03.19_00:00:00_TAI]", key="T_REC,T_OBS,QUALITY,CROTA2,NOPE")
    values = {k["name"]: k["values"] for k in answer["keywords"]}
    assert answer["status"] == 0 and answer["count"] == 1
    assert values["T_REC"] == ["2014.03.19_00:00:00_TAI"]  # 00:00:54 UTC is 00:01:29 TAI: that slot
    assert values["QUALITY"] == ["0x00000000"]
    assert abs(float(values["CROTA2"][0]) - 180.0) <= 0.1
    assert values["NOPE"] == ["Invalid KeyLink"]


def test_record_sets_select_by_t_rec_in_tai(standin: tuple[JsocStandin, str]) -> None:
    _, url = standin

    def count(ds: str) -> int:
        return rs_list(url, ds)["count"]

    assert count("hmi.M_720s_nrt[2014.03.19_00:00:00_TAI/2d]") == 2  # [start, start + 2 d)
    assert count("hmi.M_720s_nrt[2014.03.19_00:00:00_TAI-2014.03.21_00:00:00_TAI]") == 3  # inclusive
    assert count("hmi.M_720s_nrt[2014.03.18_23:59:25_UTC/12m]") == 1  # a UTC start is converted
    last = rs_list(url, "hmi.M_720s[$]")["keywords"][0]["values"]
    assert last == ["2014.03.21_00:00:00_TAI"]


def test_a_bad_record_set_is_a_status_error_drms_raises(standin: tuple[JsocStandin, str]) -> None:
    from drms.exceptions import DrmsQueryError

    _, url = standin
    assert rs_list(url, "hmi.M_720s[? QUALITY=0 ?]")["status"] == 1
    with pytest.raises(DrmsQueryError, match="does not exist"):
        drms_client(url).query("hmi.V_45s[$]", key="T_REC")


def test_drms_gets_the_segment_path_and_the_raw_file_has_no_wcs(standin: tuple[JsocStandin, str]) -> None:
    _, url = standin
    keys, segs = drms_client(url).query("hmi.M_720s[2014.03.20_00:00:00_TAI]", key="T_REC,CDELT1",
                                        seg="magnetogram")
    assert keys["CDELT1"].iloc[0] == pytest.approx(0.504297 * 16)  # 256 px for JSOC's 4096: the same sky
    with urllib.request.urlopen(url + segs["magnetogram"].iloc[0]) as res:
        hdul = fits.open(io.BytesIO(res.read()))
    assert isinstance(hdul[1], fits.CompImageHDU) and hdul[1].compression_type == "RICE_1"
    assert hdul[1].data.shape == (256, 256)
    assert "CROTA2" not in hdul[1].header and "CRPIX1" not in hdul[1].header


def test_injected_failures_answer_http_500(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    st.fail_next = 1
    with pytest.raises(urllib.error.HTTPError, match="500"):
        rs_list(url, "hmi.M_720s[$]")
    assert rs_list(url, "hmi.M_720s[$]")["count"] == 1


def test_flagged_and_dropped_records_show_in_the_listing(standin: tuple[JsocStandin, str]) -> None:
    st, url = standin
    st.set_quality("hmi.M_720s_nrt", T0, 0x400)
    st.drop("hmi.M_720s", T0)
    assert rs_list(url, "hmi.M_720s_nrt[2014.03.19_00:00:00_TAI]")["keywords"][2]["values"] == ["0x00000400"]
    assert rs_list(url, "hmi.M_720s[2014.03.19_00:00:00_TAI]")["count"] == 0


def test_shifted_dates_keep_the_day_of_year_on_the_720s_grid(tmp_path: Path) -> None:
    write_days(tmp_path, 2)
    st = JsocStandin(tmp_path, shift_years=11, naxis=256)
    first = st.times()[0]
    assert (first.year, first.month, first.day) == (2025, 3, 18)  # 00:00:00 TAI is 23:59:23 UTC in 2025
    assert st.records["hmi.M_720s"][0].t_rec == t_rec_slot(T0.replace(year=2025))


def test_level1_pixels_land_where_astropy_puts_them_on_the_sky() -> None:
    """The writer's hand-written CROTA2 mapping agrees with astropy's WCS of its keywords."""
    from astropy.wcs import WCS, FITSFixedWarning

    geom = level1_geometry(T0, naxis=512, seed=7)
    image = level1_image(bipole_field(0), geom)
    header = fits.Header({k.replace("__", "-"): v for k, v in level1_keywords(geom, t_rec_slot(T0)).items()})
    x, y = blob_center(image)
    with pytest.warns(FITSFixedWarning, match="datfix"):  # wcslib fills MJD-OBS from DATE-OBS
        wcs = WCS(header)
    tx, ty = wcs.pixel_to_world_values(x, y)
    tx = (tx + 180.0) % 360.0 - 180.0  # longitudes come back in [0, 360)
    model_scale = geom.rsun_obs / 450.0
    want_x, want_y = (np.array(blob_center(bipole_field(0))) - 512.0) * model_scale
    assert math.hypot(tx * 3600 - want_x, ty * 3600 - want_y) < 0.5 * geom.cdelt  # arcsec
    assert np.isnan(image[0, 0]) and np.isfinite(image[256, 256])


def test_an_exported_file_carries_the_keywords_and_reads_back_in_gauss() -> None:
    geom = level1_geometry(T0, naxis=256)
    image = level1_image(bipole_field(1), geom)
    hdul = fits.open(io.BytesIO(exported_fits_bytes(image, level1_keywords(geom, t_rec_slot(T0)))))
    assert hdul[1].header["BUNIT"] == "Mx/cm^2" and hdul[1].header["DATE-OBS"].startswith("2014-03-18T23:59:25")
    back = hdul[1].data
    assert np.nanmax(np.abs(back - image)) <= 0.05 + 1e-6  # stored in 0.1 G steps
    assert np.array_equal(np.isnan(back), np.isnan(image))  # BLANK beyond the limb


def test_the_command_serves_what_drms_queries(tmp_path: Path) -> None:
    write_days(tmp_path, 2)
    with subprocess.Popen([sys.executable, "-m", "service.cli", "jsoc-standin", str(tmp_path), "--port", "0",
                           "--naxis", "256", "--shift-years", "11"], stdout=subprocess.PIPE, text=True) as proc:
        code = _query_then_stop(proc)
    assert code == 0  # SIGTERM: a clean stop


def _query_then_stop(proc: subprocess.Popen) -> int:
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "2 records of hmi.M_720s_nrt, hmi.M_720s (2025-03-18 .. 2025-03-19)" in line
        url = line.rsplit(" at ", 1)[1].strip()
        keys = drms_client(url).query("hmi.M_720s_nrt[2025.03.19_00:00:00_TAI/1d]", key="T_REC",
                                      skip_conversion=["QUALITY"])
        assert list(keys["T_REC"]) == ["2025.03.19_00:00:00_TAI"]
    finally:
        proc.terminate()
    return proc.wait(timeout=20)
