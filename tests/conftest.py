"""Shared test setup.

HOME, MPLCONFIGDIR and SUNPY_CONFIGDIR point at a temporary directory before
anything imports sunpy or matplotlib, so tests never touch the user's files.
Fixtures that need something from outside (real data, a server binary) skip
locally when it is missing and fail under CI (``CI=true``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP_HOME = Path(tempfile.mkdtemp(prefix="synmag-test-home-"))
for _var, _sub in (("HOME", ""), ("MPLCONFIGDIR", "mpl"), ("SUNPY_CONFIGDIR", "sunpy")):
    (_TMP_HOME / _sub).mkdir(parents=True, exist_ok=True)
    os.environ[_var] = str(_TMP_HOME / _sub)
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytest_plugins = [
    "tests.frames",  # GONG-format frames (synthetic and from real data)
    "tests.models",  # small untrained ONNX generators for exercising the path
    "tests.pipeline_world",  # an in-process feed: replay archive, SQLite, file store, tiny model
    "tests.servers.postgres",
    "tests.servers.seaweedfs",
    "tests.servers.prometheus",
    "tests.servers.podman",  # the service image, built with podman from a debootstrap base
]


def pytest_configure(config: pytest.Config) -> None:
    """The warnings the offline time policy accepts are accepted in the suite too (not more)."""
    from service.science.timebase import TOLERATED_WARNINGS

    for message, category in TOLERATED_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:astropy.utils.exceptions.{category}")


def require(condition: bool, why: str) -> None:
    """Skip the test locally when ``condition`` is false; fail it under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real Ha2Mag data (train and val splits)."""
    path = Path(os.environ.get("DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "ha2mag"))
    require((path / "val").is_dir(), f"real data not found at {path}")
    return path


@pytest.fixture(scope="session")
def val_pair(data_dir: Path) -> tuple[Path, Path]:
    """One real val day: (H-alpha webp, HMI webp), a day with active regions."""
    halpha = sorted((data_dir / "val").glob("*_halpha.webp"))
    pick = halpha[len(halpha) // 2]
    return pick, pick.with_name(pick.name.replace("_halpha", "_hmi"))
