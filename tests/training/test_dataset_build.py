"""The dataset builder against the stand-ins on loopback: GONG (dated replay) and JSOC (drms), cycle 25.

Val days of the Ha2Mag data are served moved 11 years (2014 -> 2025, cycle 25): the GONG
stand-in as real-layout frames at their own dates, the JSOC stand-in as level-1 records
of the same minutes, negated into cycle 25's Hale polarity.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from service.devtools.jsoc_standin import JsocStandin
from service.devtools.jsoc_standin import serve_in_thread as serve_jsoc
from service.devtools.replay import DatedArchive
from service.devtools.replay import serve_in_thread as serve_gong
from service.science.dataset import read_halpha_u8, read_hmi_gauss
from service.science.preprocess import model_disk_mask
from training.dataset.build import BuildRequest, build
from training.dataset.manifest import Manifest
from training.dataset.pairs import read_pair

SHIFT = 11  # 2014 (cycle 24) -> 2025 (cycle 25)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Standins:
    folder: Path
    gong: DatedArchive
    gong_url: str
    jsoc: JsocStandin
    jsoc_url: str

    def requests(self) -> int:
        return self.gong.requests + sum(self.jsoc.requests.values())

    def request(self, start: date, end: date, **kw: object) -> BuildRequest:
        return BuildRequest(start=start, end=end, gong_url=self.gong_url, jsoc_url=self.jsoc_url,
                            min_interval_s=0.0, **kw)  # type: ignore[arg-type]


def _serve(folder: Path) -> Iterator[Standins]:
    gong = DatedArchive(folder, shift_years=SHIFT, sites="BL")
    jsoc = JsocStandin(folder, shift_years=SHIFT, naxis=512)
    gserver, gurl = serve_gong(gong)
    jserver, jurl = serve_jsoc(jsoc)
    yield Standins(folder, gong, gurl, jsoc, jurl)
    for server in (gserver, jserver):
        server.shutdown()
        server.server_close()


def link_days(data_dir: Path, folder: Path, stems: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for kind in ("halpha", "hmi"):
            (folder / f"{stem}_{kind}.webp").symlink_to(data_dir / "val" / f"{stem}_{kind}.webp")
    return folder


# 2014-03-21 is not in the val split: its step must be skipped with a reason.
FOUR = ["2014-03-19T00_00_54", "2014-03-20T00_00_54", "2014-03-22T00_00_14"]


@pytest.fixture(scope="module")
def standins(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standins]:
    yield from _serve(link_days(data_dir, tmp_path_factory.mktemp("days"), FOUR))


@pytest.fixture(scope="module")
def built(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, int]:
    out = tmp_path_factory.mktemp("built")
    before = standins.requests()
    summary = build(standins.request(date(2025, 3, 19), date(2025, 3, 22)), out, progress=None)
    return out, summary, standins.requests() - before


def test_pairs_are_written_for_days_with_frames_and_the_rest_skipped_with_a_reason(built: tuple[Path, dict, int]) -> None:
    out, summary, _ = built
    assert summary["pairs"] == 3 and summary["skipped"] == {"no_frames": 1}
    steps = Manifest.load(out).steps
    assert steps["2025-03-21T00:00:00+00:00"]["reason"] == "no_frames"
    assert sorted(p.name for p in out.glob("*_pair.fits")) == [f"2025{s[4:]}_pair.fits" for s in FOUR]


def test_the_manifest_records_inputs_times_offset_gate_and_disks(built: tuple[Path, dict, int]) -> None:
    out, _, _ = built
    step = Manifest.load(out).steps["2025-03-19T00:00:00+00:00"]
    ha, hmi = step["halpha"], step["hmi"]
    assert ha["file"] == "20250319000054Bh.fits.fz" and len(ha["sha256"]) == 64
    assert ha["gate"]["accepted"] and ha["obs_time"] == "2025-03-19T00:00:54+00:00"
    assert hmi["origin"] == "hmi.M_720s" and hmi["quality"] == "0x00000000" and len(hmi["sha256"]) == 64
    assert abs(step["offset_s"]) <= 360 and abs(hmi["disk"]["rotation_deg"]) > 90  # level 1: north down
    assert np.allclose(ha["model_disk_fit"]["center_px"], [512, 512], atol=0.5)
    assert abs(ha["model_disk_fit"]["radius_px"] - 450) < 1.0


def test_a_pair_holds_the_days_images_with_the_field_in_cycle_25_polarity(built: tuple[Path, dict, int],
                                                                          standins: Standins) -> None:
    out, _, _ = built
    pair = read_pair(out / "2025-03-19T00_00_54_pair.fits")
    inner = model_disk_mask(radius_px=440)
    truth = read_hmi_gauss(standins.folder / "2014-03-19T00_00_54_hmi.webp")
    halpha = read_halpha_u8(standins.folder / "2014-03-19T00_00_54_halpha.webp")
    assert pair.gauss.dtype == np.float32 and np.isnan(pair.gauss[0, 0])
    assert np.corrcoef(pair.gauss[inner], truth[inner])[0, 1] < -0.9  # cycle 24 negated into 25 (512 px level 1: -0.93)
    assert np.corrcoef(pair.halpha[inner], halpha[inner])[0, 1] > 0.99
    assert pair.header["HA_FILE"] == "20250319000054Bh.fits.fz" and pair.header["DATE-OBS"] == "2025-03-19T00:00:54"


def test_a_rerun_asks_the_archives_nothing(built: tuple[Path, dict, int], standins: Standins) -> None:
    out, _, first = built
    before = standins.requests()
    summary = build(standins.request(date(2025, 3, 19), date(2025, 3, 22)), out, progress=None)
    assert first > 0 and standins.requests() == before
    assert summary["pairs"] == 3 and summary["pairs_new"] == 0 and summary["skipped_before"] == 1


def test_a_step_interrupted_after_its_downloads_reads_them_from_raw(built: tuple[Path, dict, int],
                                                                    standins: Standins) -> None:
    """A pair lost after its inputs were fetched (a kill before the rename) costs no download."""
    out, _, _ = built
    (out / "2025-03-20T00_00_54_pair.fits").unlink()
    gong, segments = standins.gong.downloads, standins.jsoc.requests["segment"]
    summary = build(standins.request(date(2025, 3, 19), date(2025, 3, 22)), out, progress=None)
    assert summary["pairs_new"] == 1 and summary["http"]["gong_cached"] == 1 and summary["http"]["jsoc_cached"] >= 1
    assert standins.gong.downloads == gong and standins.jsoc.requests["segment"] == segments


# --------------------------------------------------------------------------- kill and resume
def _files(folder: Path, pattern: str) -> set[str]:
    return {p.name for p in folder.glob(pattern)}


def _cli(s: Standins, out: Path, start: str, end: str) -> list[str]:
    return [sys.executable, "-m", "training.cli", "dataset", "build", "--start", start, "--end", end,
            "--out", str(out), "--gong-url", s.gong_url, "--jsoc-url", s.jsoc_url, "--min-interval", "0"]


@pytest.fixture(scope="module")
def eight(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standins]:
    stems = sorted(p.name[:19] for p in (data_dir / "val").glob("2014-04-*_halpha.webp"))[:8]
    yield from _serve(link_days(data_dir, tmp_path_factory.mktemp("eight"), stems))


def test_a_killed_build_resumes_without_downloading_again_or_leaving_half_a_pair(eight: Standins,
                                                                                 tmp_path: Path) -> None:
    out = tmp_path / "built"
    cmd = _cli(eight, out, "2025-04-01", "2025-04-12")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random()
    for _ in range(2):  # two kills at random moments after the run's first new pair
        had = len(_files(out, "*_pair.fits"))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(_files(out, "*_pair.fits")) == had and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL  # killed, not finished
        for path in out.glob("*_pair.fits"):  # every pair on disk is whole
            assert np.isfinite(read_pair(path).halpha).all()
    assert len(_files(out, "*_pair.fits")) < 8
    raw_gong = {p.name for p in (out / "raw" / "gong").glob("*/*.fits.fz")}
    raw_jsoc = _files(out / "raw" / "jsoc" / "hmi.M_720s", "*.magnetogram.fits")
    gong, segments = eight.gong.downloads, eight.jsoc.requests["segment"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    new_gong = {p.name for p in (out / "raw" / "gong").glob("*/*.fits.fz")} - raw_gong
    new_jsoc = _files(out / "raw" / "jsoc" / "hmi.M_720s", "*.magnetogram.fits") - raw_jsoc
    assert eight.gong.downloads - gong == len(new_gong)  # only what it did not have
    assert eight.jsoc.requests["segment"] - segments == len(new_jsoc)
    manifest = Manifest.load(out)
    assert summary["pairs"] == 8 and len(manifest.pairs()) == 8 and len(manifest.steps) == 12
    assert not list(out.glob(".*.tmp")) and not list((out / "raw").glob("**/.*.tmp"))
    for _, step in manifest.pairs():
        assert (out / step["pair"]).is_file()


def test_the_dated_archive_lists_a_frame_only_once_its_shifted_date_has_passed(standins: Standins) -> None:
    from datetime import UTC, datetime

    at = datetime(2025, 3, 20, 0, 1, 30, tzinfo=UTC)
    archive = DatedArchive(standins.folder, shift_years=SHIFT, sites="B", now=lambda: at)
    assert [f.name for f in archive.published()] == ["20250319000054Bh.fits.fz", "20250320000054Bh.fits.fz"]
    assert archive.find("20250322000014Bh.fits.fz") is None  # two days in its future
