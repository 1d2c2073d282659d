"""training/device/session.sh: the verbs a GPU session runs, here on the CPU.

The device machine is not reachable from tests; what can go wrong on the way there
(staging, a run that must outlive its call, what comes back through $OUT) runs the
same here, with this interpreter standing in for the device's Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SESSION = REPO_ROOT / "training" / "device" / "session.sh"


@pytest.fixture
def device(tmp_path: Path):
    """``session(verb, *args)`` with its state in a temporary SYNMAG_DEVICE_HOME."""
    env = {**os.environ, "SYNMAG_DEVICE_HOME": str(tmp_path / "home"), "PYTHON": sys.executable,
           "SYNMAG_DEVICE_WHEELS": str(tmp_path / "no-wheels"), "OUT": str(tmp_path / "out")}
    env.pop("SYNMAG_DATABASE_URL", None)
    env.pop("SYNMAG_STORE_URL", None)
    (tmp_path / "out").mkdir()

    def session(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SESSION), *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    session.home = tmp_path / "home"
    session.out = tmp_path / "out"
    return session


def small_part(data_dir: Path, dest: Path, n_train: int = 34, n_val: int = 8) -> Path:
    """A data part as pack-for-device.sh writes it (./train/..., ./val/...), fewer days."""
    with tarfile.open(dest, "w") as tar:
        for split, n in (("train", n_train), ("val", n_val)):
            for path in sorted((data_dir / split).glob("*.webp"))[: 2 * n]:
                tar.add(path, arcname=f"./{split}/{path.name}")
    return dest


def test_stage_unpacks_parts_and_counts_files(device, data_dir: Path, tmp_path: Path) -> None:
    part = small_part(data_dir, tmp_path / "part-01.tar", n_train=3, n_val=2)
    result = device("stage", str(part))
    assert result.returncode == 0, result.stderr
    assert "train 6 of 788, val 4 of 260 files" in result.stdout


def tiny_wheel(dest: Path) -> Path:
    """A valid pure-Python wheel of one module, ``synmag_probe``."""
    path = dest / "synmag_probe-1.0-py3-none-any.whl"
    info = "synmag_probe-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("synmag_probe.py", "VALUE = 42\n" + "# padding\n" * 2000)
        whl.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: synmag-probe\nVersion: 1.0\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return path


def test_a_wheel_staged_in_pieces_is_joined_and_installed(device, tmp_path: Path) -> None:
    data = tiny_wheel(tmp_path).read_bytes()
    half = len(data) // 2
    pieces = [tmp_path / f"synmag_probe-1.0-py3-none-any.whl.part-0{i}" for i in (0, 1)]
    pieces[0].write_bytes(data[:half])
    pieces[1].write_bytes(data[half:])
    assert device("stage", *map(str, pieces)).returncode == 0
    result = device("setup")
    assert result.returncode == 0, result.stderr
    assert "installed synmag_probe-1.0-py3-none-any.whl from 2 pieces" in result.stdout
    assert "VALUE = 42" in (device.home / "site" / "synmag_probe.py").read_text()


def test_a_wheel_missing_a_piece_is_refused(device, tmp_path: Path) -> None:
    data = tiny_wheel(tmp_path).read_bytes()
    piece = tmp_path / "synmag_probe-1.0-py3-none-any.whl.part-00"
    piece.write_bytes(data[: len(data) // 2])
    assert device("stage", str(piece)).returncode == 0
    result = device("setup")
    assert result.returncode == 2 and "is damaged: stage its parts again" in result.stderr
    assert not (device.home / "site" / "synmag_probe.py").exists()


def test_setup_checks_the_chain_imports(device) -> None:
    result = device("setup")
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in result.stdout and "imports ok" in result.stdout


def test_launch_needs_staged_data(device) -> None:
    result = device("launch", "b0", "smoke")
    assert result.returncode == 2 and "stage it first" in result.stderr


@pytest.mark.slow
def test_a_launched_run_outlives_its_call_and_comes_back(device, data_dir: Path, tmp_path: Path) -> None:
    assert device("stage", str(small_part(data_dir, tmp_path / "part-01.tar"))).returncode == 0
    launched = device("launch", "b0", "smoke", "--max-steps", "2", "--set", "eval_days=2", timeout=30)
    assert launched.returncode == 0 and "launched b0" in launched.stdout
    assert not (device.home / "runs" / "b0.rc").exists()  # still training after launch returned
    again = device("launch", "b0", "smoke")
    assert again.returncode == 2 and "launched already" in again.stderr

    waited = device("wait", "400", timeout=420)
    assert waited.returncode == 0, waited.stdout
    assert "b0: exit 0 | registered b0-" in waited.stdout

    collected = device("collect", "b0")
    assert collected.returncode == 0, collected.stderr
    (line,) = (device.out / "SHA256SUMS").read_text().splitlines()
    digest, name = line.split()
    parts = sorted(device.out.glob(f"{Path(name).name}.part-*"))
    assert parts and hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest() == digest
    with tarfile.open(device.out / "results.tar.gz") as tar:
        names = tar.getnames()
    assert "runs/b0/report/report.json" in names and "runs/b0.log" in names
    assert not [n for n in names if n.endswith((".pt", ".onnx"))]


def test_wait_reports_a_failed_run(device, data_dir: Path, tmp_path: Path) -> None:
    assert device("stage", str(small_part(data_dir, tmp_path / "part-01.tar", 1, 1))).returncode == 0
    assert device("launch", "bad", "no-such-config").returncode == 0
    waited = device("wait", "60", timeout=90)
    assert waited.returncode == 0
    assert "bad: exit 2 | " in waited.stdout


def test_collect_of_a_run_without_onnx_is_refused(device, data_dir: Path, tmp_path: Path) -> None:
    assert device("stage", str(small_part(data_dir, tmp_path / "part-01.tar", 1, 1))).returncode == 0
    device("launch", "bad", "no-such-config")
    device("wait", "60", timeout=90)
    result = device("collect", "bad")
    assert result.returncode == 2 and "has no ONNX" in result.stderr
