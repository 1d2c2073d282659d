"""The bar: model inputs made from GONG-format frames of a real val H-alpha image
correlate >= 0.98 with that image on the disk, geometry within a pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from service.cli import main as synmag
from service.science import preprocess as pp
from service.science.dataset import fit_disk, read_halpha_u8

pytestmark = pytest.mark.slow


def _disk_r(a: np.ndarray, b: np.ndarray) -> float:
    mask = pp.model_disk_mask()
    return float(np.corrcoef(a[mask], b[mask])[0, 1])


def test_resample_round_trip_on_real_image(val_pair: tuple[Path, Path]) -> None:
    """Independent of any frame writer: upsample the val image into an off-centre,
    FITS-ordered 2048 frame with gain and sky, then map it back."""
    image = read_halpha_u8(val_pair[0]).astype(np.float32)
    center, radius = (1030.3, 1017.8), 905.3  # 0-based, FITS rows
    idx = np.arange(2048, dtype=np.float32)
    col = 512.0 + (idx[None, :] - center[0]) * 450.0 / radius
    row = 512.0 + (idx[:, None] - center[1]) * 450.0 / radius  # both arrays in FITS row order
    col, row = np.broadcast_arrays(col, row)
    frame = ndimage.map_coordinates(image, [row, col], order=1) * 13.7 + 300.0
    out = pp.resample_to_model(frame, center, radius)
    matched, _ = pp.match_intensity(out, pp.model_disk_mask(), pp.model_disk_mask(radius_px=449.5))
    assert _disk_r(matched, image) > 0.995


@pytest.mark.parametrize("generation", ["gongx", "hpln"])
def test_synmag_preprocess_matches_val_image(
    generation: str, real_frame_paths: dict[str, Path], val_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    frame_path = real_frame_paths[generation]
    assert synmag(["preprocess", str(frame_path), "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("*_model_input.fits")
    with fits.open(out) as hdul:
        header = hdul[0].header
        data = hdul[0].data.astype(np.float32)
    assert data.shape == (1024, 1024)
    assert header["SMUNITS"] == "halpha_u8" and header["PREPVER"] == pp.PREPROCESS_VERSION
    model_frame = data
    image = read_halpha_u8(val_pair[0]).astype(np.float32)

    r = _disk_r(model_frame, image)
    assert r >= 0.98

    cx, cy, radius = fit_disk(model_frame)
    ix, iy, iradius = fit_disk(image)
    # fit_disk finds the outermost lit pixel; the dataset's rim pixels are partly lit
    # (2x2 binning), so the image reads ~0.5 px larger than its 450 px limb.
    assert abs(cx - ix) < 1.0 and abs(cy - iy) < 1.0 and abs(radius - iradius) < 1.05
    # the header's WCS puts the Sun centre on the disk centre (1-based)
    assert header["CRPIX1"] == pytest.approx(513.0) and header["CRPIX2"] == pytest.approx(513.0)
