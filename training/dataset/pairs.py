"""One built pair on disk: ``{stem}_pair.fits``, written atomically.

Layout (FITS, so any astronomy tool opens it):

* primary HDU: no data; the header says when and what (``DATE-OBS`` of the H-alpha frame,
  ``HA_FILE``, ``HA_SHA``, ``HMI_ORIG``, ``HMI_SHA``, ``HMI_TOBS``, ``OFFSET_S``, ``PREPVER``);
* ``HALPHA``: float32 (1024, 1024) H-alpha on the dataset's 0..255 scale
  (``preprocess.model_to_halpha`` of the model input), 0 off the disk;
* ``BLOS``: float32 (1024, 1024) HMI line-of-sight field in Gauss, **unclipped**, NaN off the disk.

Both images in the model frame of ``service.science.preprocess`` (FITS row order, row 0 =
solar south). The stem is the H-alpha observation time, ``YYYY-MM-DDTHH_MM_SS`` as in Ha2Mag.

A pair is one file, written to a temporary name in the same folder, flushed, then renamed
(``os.replace``): a build killed at any moment leaves a whole pair or none, never half of one.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SUFFIX", "Pair", "atomic_write", "pair_name", "pair_time", "read_pair", "write_pair"]

SUFFIX = "_pair.fits"
HALPHA_EXT = "HALPHA"
BLOS_EXT = "BLOS"


@dataclass
class Pair:
    """A pair read back: H-alpha (0..255), B_LOS (Gauss, NaN off the disk), the primary header."""

    halpha: np.ndarray
    gauss: np.ndarray
    header: dict[str, Any]

    @property
    def obs_time(self) -> datetime:
        return datetime.fromisoformat(self.header["DATE-OBS"]).replace(tzinfo=UTC)


def pair_name(obs_time: datetime) -> str:
    """``2025-03-19T00_00_54_pair.fits`` for an H-alpha frame observed at ``obs_time`` (UTC)."""
    return f"{obs_time.astimezone(UTC):%Y-%m-%dT%H_%M_%S}{SUFFIX}"


def pair_time(path: str | Path) -> datetime:
    """The observation time a pair file's name says (aware UTC)."""
    stem = Path(path).name.removesuffix(SUFFIX)
    return datetime.strptime(stem, "%Y-%m-%dT%H_%M_%S").replace(tzinfo=UTC)


def atomic_write(path: Path, data: bytes) -> None:
    """``data`` at ``path`` all at once: a temporary file beside it, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_pair(path: Path, halpha: np.ndarray, gauss: np.ndarray, header: dict[str, Any]) -> str:
    """Write one pair atomically; returns the file's sha256.

    ``header`` holds short FITS keywords (8 characters at most; values str, int, float).
    """
    import hashlib

    from astropy.io import fits

    halpha = np.asarray(halpha, dtype=np.float32)
    gauss = np.asarray(gauss, dtype=np.float32)
    if halpha.shape != gauss.shape or halpha.ndim != 2:
        raise ValueError(f"pair images must be two equal 2-D arrays, got {halpha.shape} and {gauss.shape}")
    primary = fits.PrimaryHDU()
    for key, value in header.items():
        primary.header[key] = value
    ha = fits.ImageHDU(halpha, name=HALPHA_EXT)
    ha.header["BUNIT"] = ("DN", "H-alpha on the Ha2Mag 0..255 scale")
    bz = fits.ImageHDU(gauss, name=BLOS_EXT)
    bz.header["BUNIT"] = ("G", "line-of-sight field, unclipped")
    buf = io.BytesIO()
    fits.HDUList([primary, ha, bz]).writeto(buf)
    data = buf.getvalue()
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def read_pair(path: str | Path) -> Pair:
    """A pair file's images (float32) and primary header."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        header = {k: v for k, v in hdul[0].header.items() if k not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND")}
        return Pair(np.asarray(hdul[HALPHA_EXT].data, dtype=np.float32),
                    np.asarray(hdul[BLOS_EXT].data, dtype=np.float32), header)
