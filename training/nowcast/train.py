"""Train the nowcast head on the cached inputs (``training.nowcast.cache``).

One sample = one training day and one prior 1..7 days older (its age drawn afresh each
epoch), on the pooled 128x128 grid; with ``sign_flip`` half the samples are a Sun of the
other Hale parity (prior, generator output and target negated together), so the head
learns polarity from its inputs, not from the training cycle. Batches are runs of consecutive days (chronological
batches, the paper's "Model B"), in shuffled order. The mean is fitted by MSE on the disk,
the sigma output by a Gaussian NLL on the detached residual. The val check after each epoch
is r on the 128 grid (which is r_bin8) at ages 1 and 3 days, beside persistence; the
selection and the table by age come from ``training.nowcast.evaluate`` at full resolution.

``python -m training.nowcast.train --cache DIR --out FILE.pt [--seed N] [--epochs N]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from training.nowcast.cache import pool
from training.nowcast.config import NowcastConfig
from training.nowcast.model import Nowcast, features


class Split:
    """A cache file as tensors (pooled grid)."""

    def __init__(self, path: Path) -> None:
        z = np.load(path)
        self.times = z["times"]
        self.x = torch.from_numpy(z["x128"])[:, None]
        self.base = torch.from_numpy(z["base128"])[:, None]
        self.y = torch.from_numpy(z["y128"])[:, None]
        self.prior = torch.from_numpy(z["prior128"])
        self.seen = torch.from_numpy(z["seen128"])
        self.age_h = torch.from_numpy(z["age_h"])
        self.has = torch.from_numpy(z["links"] >= 0)
        from service.science import preprocess

        self.disk = torch.from_numpy(pool(preprocess.model_disk_mask().astype(np.float32)) > 0.99)

    def __len__(self) -> int:
        return len(self.times)

    def batch(self, idx: torch.Tensor, ages: torch.Tensor, flip: torch.Tensor | None = None):
        """Head features and target for days ``idx`` with priors ``ages`` (0-based k-1)."""
        prior = self.prior[idx, ages][:, None]
        seen = self.seen[idx, ages][:, None]
        y = self.y[idx]
        base = self.base[idx]
        if flip is not None:  # a Sun of the other Hale parity: every field's sign flips
            s = flip.reshape(-1, 1, 1, 1)
            prior, y, base = prior * s, y * s, base * s
        return features(self.x[idx], base, prior, seen, self.age_h[idx, ages][:, None]), prior, base, y


def draw_ages(split: Split, gen: torch.Generator, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(days, 0-based age index) with one random available prior age in [lo, hi] days per day."""
    allowed = split.has.clone()
    allowed[:, : lo - 1] = False
    allowed[:, hi:] = False
    days = torch.nonzero(allowed.any(1)).flatten()
    weights = allowed[days].float()
    ages = torch.multinomial(weights, 1, generator=gen).flatten()
    return days, ages


def disk_r(a: torch.Tensor, b: torch.Tensor, disk: torch.Tensor) -> float:
    """Pearson r over the disk blocks of each pair, averaged over the pairs."""
    rs = []
    for p, t in zip(a, b, strict=True):
        pv, tv = p[0][disk].double(), t[0][disk].double()
        pv, tv = pv - pv.mean(), tv - tv.mean()
        rs.append(float((pv * tv).sum() / (pv.norm() * tv.norm() + 1e-12)))
    return float(np.mean(rs))


@torch.no_grad()
def quick_val(model: Nowcast, val: Split, age_days: int) -> tuple[float, float]:
    """(nowcast r, persistence r) on the 128 grid over the val days with a prior of that age."""
    model.eval()
    days = torch.nonzero(val.has[:, age_days - 1]).flatten()
    ages = torch.full_like(days, age_days - 1)
    feats, prior, base, y = val.batch(days, ages)
    mu = model.head.field(model.head(feats), prior, base)
    model.train()
    return disk_r(mu, y, val.disk), disk_r(prior, y, val.disk)


def train(cfg: NowcastConfig, cache: Path, out: Path) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    tr, val = Split(cache / "train.npz"), Split(cache / "val.npz")
    model = Nowcast(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_steps = cfg.epochs * ((len(tr) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=n_steps, pct_start=0.15)
    disk = tr.disk[None, None].float()
    history = []
    t0 = time.time()
    for epoch in range(cfg.epochs):
        days, ages = draw_ages(tr, gen, cfg.min_age_days, cfg.max_age_days)
        # chronological batches: runs of consecutive days, the runs in random order
        runs = torch.split(torch.arange(len(days)), cfg.batch_size)
        losses = []
        for r in torch.randperm(len(runs), generator=gen).tolist():
            sel = runs[r]
            flip = (torch.randint(0, 2, (len(sel),), generator=gen) * 2 - 1).float() if cfg.sign_flip else None
            feats, prior, base, y = tr.batch(days[sel], ages[sel], flip)
            weights = model.head(feats)
            mu, log_sigma = model.head.field(weights, prior, base), weights[3]
            w = disk / disk.sum()
            mse = (((mu - y) ** 2) * w).sum() / len(sel)
            nll = ((0.5 * ((mu.detach() - y) ** 2) * torch.exp(-2 * log_sigma) + log_sigma) * w).sum() / len(sel)
            loss = mse + cfg.nll_weight * nll
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(mse.detach()))
        r1, p1 = quick_val(model, val, 1)
        r3, p3 = quick_val(model, val, 3)
        history.append({"epoch": epoch, "mse": float(np.mean(losses)), "r1": r1, "r3": r3})
        print(f"seed {cfg.seed} epoch {epoch} mse {np.mean(losses):.5f} val r 1d {r1:.3f} (pers {p1:.3f}) "
              f"3d {r3:.3f} (pers {p3:.3f}) {time.time() - t0:.0f} s", flush=True)
    torch.save({"config": cfg.to_json(), "state": model.state_dict(), "history": history}, out)
    return {"history": history}


def load(path: Path) -> Nowcast:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = Nowcast(NowcastConfig.from_json(ckpt["config"]))
    model.load_state_dict(ckpt["state"])
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=NowcastConfig.epochs)
    p.add_argument("--threads", type=int, default=NowcastConfig.threads)
    a = p.parse_args(argv)
    cfg = NowcastConfig(seed=a.seed, epochs=a.epochs, threads=a.threads)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    train(cfg, a.cache, a.out)


if __name__ == "__main__":
    main()
