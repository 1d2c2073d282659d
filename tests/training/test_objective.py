"""The regression objective (``objective = "corr"``): its r is the metric's r_bin8, and it trains G only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.errors import UsageError
from service.science import metrics, preprocess
from training.config import TrainConfig
from training.model import frame_coords
from training.train import block_disk, block_r, build_models, make_step

GEOMETRY = metrics.DiskGeometry(preprocess.MODEL_CENTER, preprocess.MODEL_RADIUS_PX)


def _frames(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A truth with a bipole and a noisy prediction of it, 0 off the disk (Gauss)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:1024, :1024]
    truth = 150 * (np.exp(-((xx - 600) ** 2 + (yy - 400) ** 2) / 800.0) - np.exp(-((xx - 640) ** 2 + (yy - 410) ** 2) / 800.0))
    pred = 0.5 * truth + rng.normal(0, 20, truth.shape)
    mask = preprocess.model_disk_mask()
    return np.where(mask, pred, 0.0), np.where(mask, truth, 0.0)


def test_block_r_is_the_metrics_r_bin8() -> None:
    pred, truth = _frames()
    expected = metrics.score(pred, truth, preprocess.model_disk_mask(), GEOMETRY)["r_bin8"]
    blocks = block_disk(frame_coords(1, 1024, 1024, torch.device("cpu"), torch.float32))
    p, t = (torch.from_numpy(a).float()[None, None] for a in (pred, truth))
    assert float(block_r(p, t, blocks)[0]) == pytest.approx(expected, abs=1e-5)
    # At a working scale of 8 the inputs are the block means themselves.
    assert float(block_r(F.avg_pool2d(p, 8), F.avg_pool2d(t, 8), blocks, scale=8)[0]) == pytest.approx(expected, abs=1e-5)


def test_corr_step_lowers_the_loss_and_leaves_the_discriminator_alone() -> None:
    cfg = TrainConfig(objective="corr", ngf=4, depth=5, crop=256, scale=8, coords=True, dropout=0.0, device="cpu")
    torch.manual_seed(0)
    generator, discriminator = build_models(cfg)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    step = make_step(cfg, generator, discriminator, opt_g, opt_d, torch.device("cpu"))
    d_before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    pred, truth = _frames()
    x = torch.from_numpy(pred[256:512, 512:768] / 200).float()[None, None]  # any input that carries the field
    y = torch.from_numpy(truth[256:512, 512:768] / 200).float()[None, None]
    coords = frame_coords(1, 1024, 1024, torch.device("cpu"), torch.float32)[:, :, 256:512, 512:768]
    first = step(x, y, coords)
    for _ in range(30):
        last = step(x, y, coords)
    assert float(first[0]) == 0.0 and float(last[1]) < float(first[1])
    assert all(torch.equal(v, discriminator.state_dict()[k]) for k, v in d_before.items())


def test_corr_needs_blocks_the_scale_divides() -> None:
    with pytest.raises(UsageError, match="corr"):
        TrainConfig(objective="corr", crop=1024, scale=16, depth=6)
    with pytest.raises(UsageError, match="objective"):
        TrainConfig(objective="wgan")
