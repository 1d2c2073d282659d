"""The ``dir`` magnetogram source: a folder of level-1 / level-1.5 FITS and dataset WebP, by observation time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from service.devtools.hmi_writer import (
    exported_fits_bytes,
    level1_geometry,
    level1_image,
    level1_keywords,
    level15_fits_bytes,
    raw_segment_bytes,
    t_rec_slot,
)
from service.errors import UsageError
from service.settings import Settings
from service.sources.magnetograms.folder import FolderSource
from tests.hmi_days import T0, bipole_field, write_days

DAY = timedelta(days=1)


def write_level1(folder: Path, day: int, name: str, **keyword_changes: object) -> None:
    t = T0 + day * DAY
    geom = level1_geometry(t, naxis=256, seed=day)
    keywords = {**level1_keywords(geom, t_rec_slot(t)), **keyword_changes}
    (folder / name).write_bytes(exported_fits_bytes(level1_image(bipole_field(day), geom), keywords))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Day 0 as dataset WebP, day 1 as level 1 (JSOC export), day 2 as a level-1.5 map."""
    write_days(tmp_path, 1)
    write_level1(tmp_path, 1, "hmi.m_720s.20140320_000000_TAI.magnetogram.fits")
    (tmp_path / "day2_l15.fits").write_bytes(level15_fits_bytes(bipole_field(2), T0 + 2 * DAY, naxis=512))
    return tmp_path


def test_every_kind_is_indexed_by_its_own_observation_time(folder: Path) -> None:
    entries = FolderSource(folder).entries()
    assert [e.kind for e in entries] == ["webp", "fits", "fits"]
    assert entries[0].obs_time == T0
    assert abs(entries[1].obs_time - (T0 + DAY)) < timedelta(minutes=2)  # T_OBS of its 720 s slot
    assert abs(entries[2].obs_time - (T0 + 2 * DAY)) < timedelta(seconds=1)  # DATE-OBS of the map


def test_nearest_takes_the_file_within_six_minutes(folder: Path) -> None:
    source = FolderSource(folder)
    m = source.nearest(T0 + DAY + timedelta(minutes=3))
    assert m is not None and m.origin == "hmi.m_720s.20140320_000000_TAI.magnetogram.fits"
    assert m.header["CROTA2"] > 179 and m.data.shape == (256, 256) and not m.in_model_frame
    assert source.nearest(T0 + DAY + timedelta(minutes=10)) is None


def test_newest_before_is_the_newest_file_in_the_window(folder: Path) -> None:
    source = FolderSource(folder)
    m = source.newest_before(T0 + 3 * DAY, timedelta(hours=12), timedelta(days=7))
    assert m is not None and m.origin == "day2_l15.fits"
    m = source.newest_before(T0 + 3 * DAY, timedelta(days=2, hours=12), timedelta(days=7))
    assert m is not None and m.origin.endswith("_hmi.webp") and m.in_model_frame
    assert source.newest_before(T0 + 3 * DAY, timedelta(days=4), timedelta(days=7)) is None


def test_the_dataset_webp_is_nan_off_the_disk_not_minus_200_gauss(folder: Path) -> None:
    m = FolderSource(folder).nearest(T0)
    assert m is not None and np.isnan(m.data[0, 0]) and np.nanmin(m.data) > -200.0


def test_unusable_files_are_left_out_with_their_reason(folder: Path) -> None:
    write_level1(folder, 3, "flagged.fits", QUALITY=0x400)
    write_level1(folder, 4, "doppler.fits", BUNIT="m/s")
    (folder / "raw.fits").write_bytes(raw_segment_bytes(np.zeros((64, 64), np.float32)))
    (folder / "junk.fits").write_bytes(b"not a FITS file")
    source = FolderSource(folder)
    assert len(source.entries()) == 3
    assert {k: v.split(":")[0] for k, v in source.skipped.items()} == {
        "flagged.fits": "quality", "doppler.fits": "bad_units", "raw.fits": "no_wcs", "junk.fits": "unreadable"}


def test_a_file_broken_past_its_header_gives_way_to_the_next_one(folder: Path) -> None:
    write_level1(folder, 3, "broken.fits")
    data = (folder / "broken.fits").read_bytes()
    n = len(data)
    (folder / "broken.fits").write_bytes(data[: n // 2] + b"\xff" * (n - n // 2 - 2880) + data[-2880:])
    source = FolderSource(folder)
    m = source.newest_before(T0 + 4 * DAY, timedelta(0), timedelta(days=7))
    assert m is not None and m.origin == "day2_l15.fits"
    assert source.skipped["broken.fits"].startswith("unreadable: CfitsioException: decompression error")
    assert [e.path.name for e in source.entries()][-1] == "day2_l15.fits"  # not tried again


def test_a_file_is_read_once_for_many_calls(folder: Path) -> None:
    source = FolderSource(folder)
    first = source.newest_before(T0 + 3 * DAY, timedelta(0), timedelta(days=7))
    assert source.newest_before(T0 + 3 * DAY + timedelta(minutes=1), timedelta(0), timedelta(days=7)) is first


def test_a_file_written_later_is_found(folder: Path) -> None:
    source = FolderSource(folder)
    assert source.nearest(T0 + 5 * DAY) is None
    write_level1(folder, 5, "later.fits")
    m = source.nearest(T0 + 5 * DAY)
    assert m is not None and m.origin == "later.fits"


def test_a_missing_folder_or_setting_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        FolderSource(tmp_path / "nope")
    with pytest.raises(UsageError, match="needs SYNMAG_TRUTH_DIR"):
        FolderSource.from_settings(Settings())
