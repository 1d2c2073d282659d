"""Dataset readers: exact HMI decoding, real H-alpha geometry, pairing by time."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.science.dataset import (
    disk_mask,
    fit_disk,
    list_pairs,
    read_halpha_u8,
    read_hmi_gauss,
)


def _webp(path, value_or_array):
    arr = np.broadcast_to(np.asarray(value_or_array, np.uint8), (1024, 1024))
    Image.fromarray(np.ascontiguousarray(arr)).convert("RGB").save(path, lossless=True)
    return path


def test_hmi_gauss_decoding_exact(tmp_path):
    codes = np.zeros((1024, 1024), np.uint8)
    codes[0, :3] = (127, 255, 0)
    gauss = read_hmi_gauss(_webp(tmp_path / "x_hmi.webp", codes))
    assert gauss.dtype == np.float32
    assert gauss[0, 0] == pytest.approx(-0.78431, abs=1e-5)  # quiet Sun code 127
    assert (gauss[0, 1], gauss[0, 2]) == (pytest.approx(200.0), pytest.approx(-200.0))


def test_real_halpha_geometry(val_pair):
    img = read_halpha_u8(val_pair[0])
    assert img.dtype == np.uint8 and img.shape == (1024, 1024)
    assert fit_disk(img) == pytest.approx((512.0, 512.0, 451.0), abs=0.3)


def test_fit_disk_exact_on_ideal_disk():
    mask = disk_mask((1024, 1024), (500.25, 520.5), 430.0)
    assert fit_disk(mask) == pytest.approx((500.25, 520.5, 430.0), abs=0.05)


def test_disk_mask_area():
    mask = disk_mask((200, 300), (150.0, 100.0), 50.0)
    assert mask[100, 150] and not mask[0, 0]
    assert mask.sum() == pytest.approx(np.pi * 50**2, rel=0.01)


def test_list_pairs_sorted_and_paired(tmp_path):
    for stem in ("2014-03-22T00_00_14", "2014-03-19T00_00_54"):
        (tmp_path / f"{stem}_halpha.webp").touch()
        (tmp_path / f"{stem}_hmi.webp").touch()
    (tmp_path / "2014-03-20T00_00_54_halpha.webp").touch()  # no HMI: skipped
    pairs = list_pairs(tmp_path)
    assert [p.time.isot for p in pairs] == ["2014-03-19T00:00:54.000", "2014-03-22T00:00:14.000"]
    assert pairs[0].hmi_path.name == "2014-03-19T00_00_54_hmi.webp"
