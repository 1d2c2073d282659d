"""The nowcast's training package on a few real val days: cache, one epoch, export parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.data import Day, list_webp_days  # noqa: E402
from training.nowcast.cache import build, prior_days  # noqa: E402
from training.nowcast.config import NowcastConfig  # noqa: E402
from training.nowcast.model import Nowcast  # noqa: E402

pytestmark = pytest.mark.slow


def test_prior_links_skip_missing_days():
    days = [Day(t, Path("h"), Path("m"), "webp") for t in
            ("2014-05-01T00:00:00", "2014-05-02T00:00:00", "2014-05-04T00:01:00")]
    links = prior_days(days)
    assert links[1][0] == 0  # one day before
    assert links[2][:4] == [-1, 1, 0, -1]  # one day before: missing; two: May 2; three: May 1


def test_an_untrained_head_starts_as_persistence():
    model = Nowcast(NowcastConfig(channels=(8, 8))).eval()
    prior = torch.randn(1, 1, 64, 64).clamp(-1, 1)
    planes = [torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64), prior, torch.ones(1, 1, 64, 64)]
    with torch.no_grad():
        bz, sigma = model(*planes, torch.tensor([[24.0]]), torch.ones((1, 1)))
    assert torch.allclose(bz, torch.sigmoid(torch.tensor(3.0)) * prior, atol=0.02)
    assert (sigma > 0).all()


@pytest.fixture(scope="module")
def tiny_cache(data_dir: Path, tiny_onnx: Path, tmp_path_factory) -> Path:
    days = list_webp_days(data_dir / "val")[:4]
    out = tmp_path_factory.mktemp("nowcast-cache")
    for split in ("train", "val"):
        build(days, tiny_onnx, out / f"{split}.npz", keep_full=split == "val")
    return out


def test_cache_holds_priors_of_the_days_before(tiny_cache: Path):
    z = np.load(tiny_cache / "train.npz")
    assert z["prior128"].shape == (4, 7, 128, 128)
    assert z["links"][0].tolist() == [-1] * 7 and z["links"][3][0] == 2
    assert 20 < z["age_h"][3, 0] < 28 and z["seen128"][3, 0].mean() > 0.5


def test_one_epoch_trains_and_saves_its_config(tiny_cache: Path, tmp_path: Path):
    from training.nowcast.train import load, train

    cfg = NowcastConfig(channels=(8, 8), epochs=1, batch_size=2, threads=1)
    train(cfg, tiny_cache, tmp_path / "s0.pt")
    assert load(tmp_path / "s0.pt").cfg == cfg


def test_composed_onnx_matches_torch(tiny_onnx: Path, tmp_path: Path):
    from training.nowcast.export import export_nowcast, parity

    torch.manual_seed(0)
    models = [Nowcast(NowcastConfig(channels=(8, 8))) for _ in range(2)]
    for m in models:  # away from the persistence start, so the head's weights matter
        for p in m.parameters():
            torch.nn.init.normal_(p, 0, 0.05)
    path = export_nowcast(models, tiny_onnx, tmp_path / "nc.onnx", {"version": "t"})
    rng = np.random.default_rng(0)
    feeds = {"halpha": rng.uniform(-1, 1, (1, 1, 1024, 1024)).astype(np.float32),
             "prior": rng.uniform(-0.5, 0.5, (1, 1, 1024, 1024)).astype(np.float32),
             "prior_seen": np.ones((1, 1, 1024, 1024), np.float32),
             "prior_age_h": np.full((1, 1), 30.0, np.float32), "halpha_sign": -np.ones((1, 1), np.float32)}
    assert parity(models, tiny_onnx, path, feeds) < 0.5  # Gauss (float16 head weights)


def test_the_generator_field_enters_with_the_frames_hale_sign():
    model = Nowcast(NowcastConfig(channels=(8, 8))).eval()
    with torch.no_grad():  # weights: no prior, all generator (b = 1), no correction
        model.head.out.bias.copy_(torch.tensor([-20.0, 1.0, 0.0, -1.6]))
    base = torch.full((1, 1, 64, 64), 0.5)
    zeros = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        same, _ = model(zeros, base, zeros, zeros, torch.tensor([[24.0]]), torch.ones((1, 1)))
        other, _ = model(zeros, base, zeros, zeros, torch.tensor([[24.0]]), -torch.ones((1, 1)))
    assert torch.allclose(same, base, atol=1e-4) and torch.allclose(other, -base, atol=1e-4)
