"""The offline time policy: frames dated a year after the bundled IERS tables still work.

The clock is moved, not the frames alone: astropy's staleness check compares the
table's age with ``Time.now()``, so the fixture makes "now" a year after the table
and the frames are dated then, offline (nothing here can download).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from astropy.utils import iers


@pytest.fixture
def year_after_tables(monkeypatch: pytest.MonkeyPatch) -> Time:
    """``Time.now()`` one year after the bundled IERS-A predictions start; returns that time."""
    table = iers.IERS_Auto.open()
    later = Time(table.meta["predictive_mjd"], format="mjd", scale="utc") + 365 * u.day
    monkeypatch.setattr(Time, "now", classmethod(lambda cls: later))
    return later


def test_the_bomb_is_real_without_the_policy(year_after_tables: Time) -> None:
    from service.science.frame import observer_at

    with iers.conf.set_temp("auto_max_age", 30.0), pytest.raises(ValueError, match="30.0 days old"):
        observer_at(year_after_tables - 1 * u.day, 34 * u.deg, -117 * u.deg)


def test_policy_is_set_on_import_in_a_fresh_process() -> None:
    code = (
        "import service.science\n"
        "from astropy.utils import iers\n"
        "c = iers.conf\n"
        "print(c.auto_download, c.auto_max_age, c.iers_degraded_accuracy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "None", "ignore"]


def test_frame_to_product_a_year_after_tables(
    year_after_tables: Time, synthetic_frame_path, tiny_onnx: Path
) -> None:
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import run_frame
    from service.sources.gong.reader import read_gong

    when = (year_after_tables - 1 * u.day).strftime("%Y-%m-%dT%H:%M:%S")
    frame = synthetic_frame_path("hpln", obs_time=when)  # the writer computes P, B0, L0 then
    result = run_frame(frame, OnnxGenerator(tiny_onnx), reader=read_gong)
    assert result.obs_time.startswith(when[:16])
    assert np.isfinite(result.gauss[result.geometry.mask()]).all()
    assert 1.4e11 < result.geometry.dsun_m < 1.6e11


def test_replay_serves_frames_a_year_after_tables(
    year_after_tables: Time, data_dir: Path, tmp_path: Path
) -> None:
    from service.devtools.replay import ReplayArchive
    from service.sources.gong.reader import read_gong

    folder = tmp_path / "val"
    folder.mkdir()
    halpha = sorted((data_dir / "val").glob("*_halpha.webp"))[0]
    (folder / halpha.name).symlink_to(halpha)
    now = year_after_tables.to_datetime(timezone=UTC) - timedelta(hours=1)
    archive = ReplayArchive(folder, rewind_minutes=5, backlog=1, now=lambda: now)
    frame = archive.published()[0]
    read = read_gong(archive.frame_bytes(frame), filename=frame.name)
    assert read.obs_time.to_datetime(timezone=UTC) == frame.obs_time
    assert abs(read.b0.to_value("deg")) < 7.3
