"""Training data: splits, order, device crops/flips (the sign of B), FITS pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import (
    GAP_DAYS,
    Day,
    DeviceDays,
    chronological_splits,
    epoch_batches,
    list_fits_days,
    list_webp_days,
    read_model_pair,
)


def _days(n: int, start_mjd: float = 56300.0) -> list[Day]:
    from astropy.time import Time

    return [Day(Time(start_mjd + i, format="mjd").isot, Path(f"{i}a"), Path(f"{i}b"), "fits") for i in range(n)]


def test_chronological_batches_are_consecutive_days() -> None:
    batches = [b.tolist() for b in epoch_batches(20, 8, "chronological", seed=0, epoch=5)]
    assert batches == [list(range(0, 8)), list(range(8, 16)), list(range(16, 20))]


def test_shuffled_batches_are_seeded_per_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        return torch.cat(list(epoch_batches(50, 8, "shuffled", seed, epoch))).tolist()

    assert sorted(order(0, 0)) == list(range(50))
    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != list(range(50))


def test_computed_splits_are_chronological_with_gaps() -> None:
    splits = chronological_splits(_days(400))
    train, val, test = (splits[k] for k in ("train", "val", "test"))
    assert train and val and test
    for a, b in ((train, val), (val, test)):
        assert b[0].mjd - a[-1].mjd >= GAP_DAYS
        assert a[-1].time < b[0].time


@pytest.fixture(scope="module")
def two_days(data_dir: Path) -> DeviceDays:
    return DeviceDays(list_webp_days(data_dir / "val")[:2], "cpu")


def test_device_decode_matches_shared_preprocess(two_days: DeviceDays) -> None:
    x, y = two_days.full(1)
    x_ref, y_ref = read_model_pair(two_days.days[1])
    np.testing.assert_allclose(x[0, 0].numpy(), x_ref, atol=1e-6)
    np.testing.assert_allclose(y[0, 0].numpy(), y_ref, atol=1e-6)
    assert float(y[0, 0, 0, 0]) == 0.0  # off-disk target is 0 G, not the -200 G of code 0


def test_flip_flips_target_sign(two_days: DeviceDays) -> None:
    index = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    draws = {}
    for flip in (False, True):
        g = torch.Generator().manual_seed(11)
        draws[flip] = two_days.batch(index, 256, g, flip_ns=flip)
    (x0, y0, c0), (x1, y1, c1) = draws[False], draws[True]
    flipped = [not torch.equal(x0[i], x1[i]) for i in range(len(index))]
    assert any(flipped) and not all(flipped)
    for i, f in enumerate(flipped):
        if f:  # rows reversed (N-S) and B negated
            assert torch.equal(x1[i], x0[i].flip(-2))
            assert torch.equal(y1[i], -y0[i].flip(-2))
            # a N-S flipped crop sits in the other hemisphere: y position mirrored, x kept
            assert torch.equal(c1[i, 1], -c0[i, 1].flip(-2)) and torch.equal(c1[i, 0], c0[i, 0])
        else:
            assert torch.equal(y1[i], y0[i]) and torch.equal(c1[i], c0[i])


def test_ew_flip_negates_too(two_days: DeviceDays) -> None:
    index = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x0, y0, _ = two_days.batch(index, 256, g0, flip_ns=False, flip_ew=False)
    x1, y1, _ = two_days.batch(index, 256, g1, flip_ns=False, flip_ew=True)
    for i in range(len(index)):
        if not torch.equal(x0[i], x1[i]):
            assert torch.equal(y1[i], -y0[i].flip(-1))


def test_fits_pairs_are_read_in_model_units(tmp_path: Path) -> None:
    from astropy.io import fits

    from service.science.preprocess import model_disk_mask

    mask = model_disk_mask()
    rng = np.random.default_rng(0)
    for i in range(2):
        stem = f"2020-01-0{i + 1}T00_00_00"
        halpha = np.where(mask, rng.uniform(100, 220, mask.shape), 0).astype(np.float32)
        hmi = np.where(mask, rng.normal(0, 300, mask.shape), np.nan).astype(np.float32)
        header = fits.Header({"DATE-OBS": f"2020-01-0{i + 1}T00:00:0{i}"})
        fits.writeto(tmp_path / f"{stem}_halpha.fits", halpha, header)
        fits.writeto(tmp_path / f"{stem}_hmi.fits", hmi, header)
    days = list_fits_days(tmp_path)
    assert [d.time for d in days] == ["2020-01-01T00:00:00.000", "2020-01-02T00:00:01.000"]
    stack = DeviceDays(days, "cpu")
    x, y = stack.full(0)
    assert float(y.abs().max()) <= 1.0  # clipped at +-200 G by gauss_to_model
    assert float(y[0, 0][torch.from_numpy(~mask)].abs().max()) == 0.0


def test_crop_positions_match_the_full_frame(two_days: DeviceDays) -> None:
    from training.model import frame_coords

    index = torch.tensor([0, 1])
    x, _, coords = two_days.batch(index, 256, torch.Generator().manual_seed(3), flip_ns=False)
    full_x, _ = two_days.full(0)
    grid = frame_coords(1, 1024, 1024, torch.device("cpu"), torch.float32)[0]
    # find the crop in the full frame through its position channels, then compare pixels
    oy = round(float(coords[0, 1, 0, 0]) * 450.0 + 512.0)
    ox = round(float(coords[0, 0, 0, 0]) * 450.0 + 512.0)
    torch.testing.assert_close(coords[0], grid[:, oy : oy + 256, ox : ox + 256])
    torch.testing.assert_close(x[0, 0], full_x[0, 0, oy : oy + 256, ox : ox + 256])
