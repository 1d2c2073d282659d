"""The JSOC magnetogram source: record-set queries, times, QUALITY, headers for the WCS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from service.sources.magnetograms.jsoc import (
    build_query,
    header_from_record,
    parse_jsoc_time,
    select_record,
)


def test_jsoc_query_is_a_tai_window_around_the_time() -> None:
    t = datetime(2014, 3, 19, 0, 0, 54, tzinfo=UTC)  # TAI - UTC = 35 s in 2014
    assert build_query("hmi.M_720s_nrt", t) == "hmi.M_720s_nrt[2014.03.18_23:55:29_TAI/12m]"


def test_jsoc_times_parse_to_utc() -> None:
    assert parse_jsoc_time("2014.03.19_00:00:00_TAI") == datetime(2014, 3, 18, 23, 59, 25, tzinfo=UTC)
    assert parse_jsoc_time("2014.03.19_00:01:07.50_TAI").second == 32
    assert parse_jsoc_time("MISSING") is None


# Keyword rows as drms returns them for hmi.M_720s (values from a real 2014-03-19 record).
RECORDS = pd.DataFrame([
    {"T_REC": "2014.03.19_00:00:00_TAI", "T_OBS": "2014.03.19_00:00:44.70_TAI", "QUALITY": 0,
     "CROTA2": 180.0826, "CDELT1": 0.504297, "CDELT2": 0.504297, "CRPIX1": 2049.3, "CRPIX2": 2047.2,
     "CRVAL1": 0.0, "CRVAL2": 0.0, "RSUN_OBS": 964.2, "DSUN_OBS": 1.4888e11, "CRLN_OBS": 20.1,
     "CRLT_OBS": -7.1},
    # nearer to the product, but flagged (QUALITY bit 10: missing data / eclipse)
    {"T_REC": "2014.03.19_00:00:00_TAI", "T_OBS": "2014.03.19_00:01:30.00_TAI", "QUALITY": 1024,
     "CROTA2": 180.0826, "CDELT1": 0.504297, "CDELT2": 0.504297, "CRPIX1": 2049.3, "CRPIX2": 2047.2,
     "CRVAL1": 0.0, "CRVAL2": 0.0, "RSUN_OBS": 964.2, "DSUN_OBS": 1.4888e11, "CRLN_OBS": 13.5,
     "CRLT_OBS": -7.1},
    {"T_REC": "2014.03.19_00:12:00_TAI", "T_OBS": "MISSING", "QUALITY": 0, "CROTA2": float("nan")},
])


def test_select_record_skips_bad_quality_and_missing() -> None:
    t = datetime(2014, 3, 19, 0, 0, 54, tzinfo=UTC)
    assert select_record(RECORDS, t) == 0  # row 1 is nearer but QUALITY != 0; row 2 is MISSING
    assert select_record(RECORDS, t + timedelta(hours=1)) is None


def test_header_from_record_builds_a_rotated_helioprojective_wcs() -> None:
    from service.verification.prep import _wcs

    header = header_from_record(RECORDS.iloc[0].to_dict())
    assert header["DATE-OBS"].startswith("2014-03-19T00:00:09")
    assert header["HGLT_OBS"] == -7.1
    wcs = _wcs(header)
    assert wcs.wcs.ctype[0] == "HPLN-TAN"
    assert abs(wcs.wcs.get_pc()[0, 0] + 1) < 1e-3  # CROTA2 ~ 180: the image is upside down


