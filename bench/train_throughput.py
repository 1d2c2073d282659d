"""Training throughput: crops/s and achieved TFLOP/s of the pix2pix step on this device.

The step is ``training.train.make_step`` (D then G update, the real loop's code)
on random batches already on the device (the data path, an on-device gather, is
not timed). FLOPs per crop per iteration are counted by
``torch.utils.flop_counter`` on the meta device (no compute): forward and
backward of G and D as the step runs them. The paper config (ngf 64, 512x512
crops) costs about 0.35 TFLOP per crop per iteration.

On a GPU the paper config is timed (bf16 autocast, channels_last, compiled,
batch 8). On a CPU the ``cpu.toml`` config is timed, and the paper config too
when a single-crop step is estimated to take less than ``PAPER_CPU_LIMIT_S``.
``SYNMAG_BENCH_TRAIN_STEPS`` sets the timed steps (default 4 on CPU, 200 on GPU).
"""

from __future__ import annotations

import os
import time
from typing import Any

PAPER_CPU_LIMIT_S = 60.0


def flops_per_crop(cfg: Any) -> float:
    """FLOPs of one training iteration (G fwd+bwd, D fwd+bwd x2) per crop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from training.train import build_models, gan_loss

    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        g, d = build_models(cfg)
        x = torch.zeros(1, 1, cfg.crop, cfg.crop)
        y = torch.zeros(1, 1, cfg.crop, cfg.crop)
        with FlopCounterMode(display=False) as counter:
            fake = g(x)
            loss_d = 0.5 * (gan_loss("vanilla", d(x, y), True) + gan_loss("vanilla", d(x, fake.detach()), False))
            loss_d.backward()
            d.requires_grad_(False)
            loss_g = gan_loss("vanilla", d(x, fake), True) + cfg.lambda_l1 * F.l1_loss(fake, y)
            loss_g.backward()
    return float(counter.get_total_flops())


def measure(cfg: Any, steps: int, warmup: int, device: Any) -> dict[str, Any]:
    """Time ``steps`` training steps of ``cfg`` after ``warmup`` ones."""
    import torch

    from training.train import build_models, make_step

    g, d = build_models(cfg)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    g.to(device, memory_format=memory_format)
    d.to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=cfg.betas)
    step = make_step(cfg, g, d, opt_g, opt_d, device)
    shape = (cfg.batch_size, 1, cfg.crop, cfg.crop)
    x = torch.rand(shape, device=device).mul(2).sub(1).contiguous(memory_format=memory_format)
    y = torch.rand(shape, device=device).mul(2).sub(1).contiguous(memory_format=memory_format)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    t_warm = time.perf_counter()
    for _ in range(warmup):
        step(x, y, None)
    sync()
    warm_s = time.perf_counter() - t_warm
    t0 = time.perf_counter()
    for _ in range(steps):
        losses = step(x, y, None)
    sync()
    wall = time.perf_counter() - t0
    flops = flops_per_crop(cfg)
    crops_s = steps * cfg.batch_size / wall
    return {
        "config": cfg.name,
        "ngf": cfg.ngf,
        "crop": cfg.crop,
        "batch": cfg.batch_size,
        "steps": steps,
        "warmup_s": round(warm_s, 2),
        "s_per_step": round(wall / steps, 4),
        "crops_per_s": round(crops_s, 3),
        "tflop_per_crop": round(flops / 1e12, 4),
        "achieved_tflops": round(crops_s * flops / 1e12, 4),
        "finite_losses": bool(torch.isfinite(losses).all().item()),
    }


def run() -> dict[str, Any]:
    import torch

    from training.config import load_config

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if cuda else f"cpu x{torch.get_num_threads()}"}
    paper = load_config("paper", device=str(device))
    if cuda:
        steps = int(os.environ.get("SYNMAG_BENCH_TRAIN_STEPS", 200))
        out["paper"] = measure(paper, steps=steps, warmup=10, device=device)
        out["crops_per_s_512"] = out["paper"]["crops_per_s"]
        out["achieved_tflops"] = out["paper"]["achieved_tflops"]
        return out
    steps = int(os.environ.get("SYNMAG_BENCH_TRAIN_STEPS", 4))
    small = load_config("cpu", device="cpu")
    out["cpu_config"] = measure(small, steps=steps, warmup=1, device=device)
    out["achieved_tflops"] = out["cpu_config"]["achieved_tflops"]
    paper_flops = flops_per_crop(paper)
    out["paper_tflop_per_crop"] = round(paper_flops / 1e12, 4)
    # One paper crop at the FLOP rate the small config achieved.
    estimate = paper_flops / max(out["cpu_config"]["achieved_tflops"] * 1e12, 1.0)
    out["paper_step_estimate_s_per_crop"] = round(estimate, 1)
    if 2 * estimate < PAPER_CPU_LIMIT_S:  # warm-up + one timed step
        one = paper.replace(batch_size=1, compile=False, channels_last=True)
        out["paper"] = measure(one, steps=1, warmup=1, device=device)
        out["crops_per_s_512"] = out["paper"]["crops_per_s"]
    else:
        out["paper"] = f"skipped: one 512 crop would take ~{estimate:.0f} s here"
        out["crops_per_s_512_estimate"] = round(1.0 / estimate, 4)
    return out
