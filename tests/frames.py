"""GONG-format frame fixtures (pytest plugin, listed in conftest).

- ``gong_header``: the real GONG H-alpha header sunpy ships (gongx generation).
- ``synthetic_frame_path``: factory writing a synthetic-disk frame, either generation.
- ``real_frame_paths``: ``{"gongx": Path, "hpln": Path}``, frames made from the real val
  H-alpha image of ``val_pair`` (session scope).
- :func:`write_raw_frame`: a real-layout file from arbitrary pixels/header (bad frames).
- :func:`link_val_days`: the first real val days (H-alpha + HMI) linked into a folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

GENERATIONS = ("gongx", "hpln")
SYNTHETIC_TIME = "2024-02-16T00:00:02"  # the sample header's DATE-OBS


def write_raw_frame(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    """Write ``data`` as an NSO-layout file: empty primary + RICE-compressed image."""
    hdu = fits.CompImageHDU(data=data, header=header, compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@pytest.fixture(scope="session")
def gong_header() -> fits.Header:
    """The real GONG H-alpha header from sunpy's test data (Big Bear, 2024-02-16)."""
    from service.devtools.gong_writer import gong_template_header

    return gong_template_header()


@pytest.fixture(scope="session")
def synthetic_disk_u8() -> np.ndarray:
    """A dataset-like synthetic H-alpha disk (1024x1024 uint8), fixed seed."""
    from service.devtools.gong_writer import synthetic_disk

    return synthetic_disk(rng=0)


@pytest.fixture
def synthetic_frame_path(
    tmp_path: Path, synthetic_disk_u8: np.ndarray
) -> Callable[..., Path]:
    """Factory: ``make(generation="gongx", obs_time=..., site_letter="B", **kw) -> Path``.

    Extra keywords go to :func:`service.devtools.gong_writer.write_gong_frame`.
    """
    from service.devtools.gong_writer import write_gong_frame

    def make(
        generation: str = "gongx",
        obs_time: str = SYNTHETIC_TIME,
        site_letter: str = "B",
        **kwargs: object,
    ) -> Path:
        out = tmp_path / generation
        out.mkdir(exist_ok=True)
        kwargs.setdefault("rng", 1)
        return write_gong_frame(  # type: ignore[return-value]
            synthetic_disk_u8, obs_time, site_letter, generation, out, overwrite=True, **kwargs
        )

    return make


@pytest.fixture(scope="session")
def real_frame_paths(
    val_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """GONG-format frames (both generations) made from the real val H-alpha image.

    The observation time is the dataset file's; the site is Big Bear.
    """
    from service.devtools.gong_writer import write_gong_frame
    from service.science.dataset import pair_time, read_halpha_u8

    image = read_halpha_u8(val_pair[0])
    when = pair_time(val_pair[0])
    out = tmp_path_factory.mktemp("real-frames")
    paths = {}
    for gen in GENERATIONS:
        (out / gen).mkdir()
        paths[gen] = write_gong_frame(image, when, "B", gen, out / gen, rng=2)
    return paths  # type: ignore[return-value]


def link_val_days(data_dir: Path, folder: Path, n: int) -> Path:
    """Symlink the first ``n`` val days (H-alpha and HMI pairs) of ``data_dir`` into a new ``folder``."""
    folder.mkdir()
    for halpha in sorted((data_dir / "val").glob("*_halpha.webp"))[:n]:
        for path in (halpha, halpha.with_name(halpha.name.replace("_halpha", "_hmi"))):
            (folder / path.name).symlink_to(path)
    return folder
