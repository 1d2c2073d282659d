"""Train the pix2pix generator. Read top to bottom: setup, loop, checkpoints.

The objective is pix2pix's: the generator G maps H-alpha x to a magnetogram and
the PatchGAN D judges (x, magnetogram) pairs patch by patch;

    L_D = 1/2 [GAN(D(x, y), real) + GAN(D(x, G(x)), fake)]
    L_G = GAN(D(x, G(x)), real) + lambda_l1 * |G(x) - y|_1

with GAN the vanilla BCE-with-logits loss (the paper) or least squares.

``objective = "corr"`` (an addition to the paper) drops the discriminator and
regresses on the scale the headline metric scores: with p and y the 8x8 block means
of the frame's disk (blocks entirely on it, as ``service.science.metrics`` bins),

    L_G = 1 - r(p, y) + lambda_mse * mean((G(x) - y)^2)

per sample. An adversarial loss rewards drawing plausible small-scale field; where
H-alpha does not decide the polarity a drawn field is a coin toss that the
correlation punishes, while a regression falls back to the conditional mean. The
MSE term fixes the amplitude, which r alone leaves free. Adam, lr
constant for ``epochs_constant`` epochs, then linearly down to 0 over
``epochs_decay`` epochs (pix2pix's ``linear`` policy, stepped per epoch).

The data sit on the device (``training.data.DeviceDays``); crops and flips are
drawn there, and losses are summed on the device and read back every
``log_every`` steps only, so the loop never waits for the host.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.config import TrainConfig
from training.data import DeviceDays, epoch_batches, split_days, steps_per_epoch
from training.model import PatchDiscriminator, UNetGenerator, init_weights

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator_for(cfg: TrainConfig) -> UNetGenerator:
    """The generator a config describes (untrained weights)."""
    return UNetGenerator(
        ngf=cfg.ngf, depth=cfg.depth, norm=cfg.norm, dropout=cfg.dropout, coords=cfg.coords,
        scale=cfg.scale, upsample=cfg.upsample,
    )


def build_models(cfg: TrainConfig) -> tuple[UNetGenerator, PatchDiscriminator]:
    generator = generator_for(cfg)
    discriminator = PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.d_layers, norm=cfg.norm)
    init_weights(generator)
    init_weights(discriminator)
    return generator, discriminator


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """pix2pix ``linear`` policy: 1 for the constant epochs, then down to ~0."""
    return 1.0 - max(0, epoch + 1 - cfg.epochs_constant) / float(cfg.epochs_decay + 1)


def gan_loss(kind: str, logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def block_disk(coords: torch.Tensor) -> torch.Tensor:
    """(B, 1, H/8, W/8) float mask of the 8x8 blocks entirely on the disk, from position channels."""
    disk = ((coords.float() ** 2).sum(1, keepdim=True) <= 1.0).float()
    return (F.avg_pool2d(disk, 8) == 1.0).float()


def block_r(pred: torch.Tensor, target: torch.Tensor, blocks: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """Pearson r per sample of the 8x8 block means over ``blocks``: r_bin8 in torch.

    ``pred`` and ``target`` are at working scale ``scale`` (a divisor of 8), so their
    blocks are 8/scale pixels wide; ``blocks`` comes from :func:`block_disk`.
    """
    k = 8 // scale
    if k > 1:
        pred, target = F.avg_pool2d(pred, k), F.avg_pool2d(target, k)
    n = blocks.sum((1, 2, 3)).clamp(min=1.0)

    def centred(v: torch.Tensor) -> torch.Tensor:
        return (v - (v * blocks).sum((1, 2, 3), keepdim=True) / n[:, None, None, None]) * blocks

    p, t = centred(pred.float()), centred(target.float())
    return (p * t).sum((1, 2, 3)) / ((p * p).sum((1, 2, 3)) * (t * t).sum((1, 2, 3)) + 1e-12).sqrt()


def make_step(
    cfg: TrainConfig,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    device: torch.device,
) -> Callable[..., torch.Tensor]:
    """One optimisation step of D then G on a batch; returns (L_D, GAN_G, L1, 1) on the device.

    ``step(x, y, coords=None)``: ``coords`` are the crops' position channels (used by a
    generator built with ``coords=True``); the discriminator sees H-alpha and B only.
    With ``objective = "corr"`` (``coords`` required) only G is stepped and the returned values are
    (0, 1 - r, MSE, 1).
    """
    g_fwd = torch.compile(generator) if cfg.compile else generator
    d_fwd = torch.compile(discriminator) if cfg.compile else discriminator
    cuda = device.type == "cuda"
    one = torch.ones((), device=device)

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if (cuda and cfg.bf16) else nullcontext()

    def working_scale(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """Block means at the generator's working scale (None stays None): G, D and the losses see those."""
        if cfg.scale == 1:
            return tensors
        return tuple(None if t is None else F.avg_pool2d(t, cfg.scale) for t in tensors)

    def corr_step(x: torch.Tensor, y: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        blocks = block_disk(coords)  # from the frame's pixels, before pooling
        x, y, coords = working_scale(x, y, coords)
        with autocast():
            fake = g_fwd(x, coords, cfg.scale > 1)
        loss_r = (1.0 - block_r(fake, y, blocks, cfg.scale)).mean()
        loss_mse = F.mse_loss(fake.float(), y)
        loss = loss_r + cfg.lambda_mse * loss_mse
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        return torch.stack([0.0 * one, loss_r.detach(), loss_mse.detach(), one])

    def step(x: torch.Tensor, y: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        x, y, coords = working_scale(x, y, coords)
        with autocast():
            fake = g_fwd(x, coords, cfg.scale > 1)

        # D: real pairs towards 1, generated pairs towards 0 (G is not updated here).
        discriminator.requires_grad_(True)
        with autocast():
            loss_d = 0.5 * (
                gan_loss(cfg.gan_loss, d_fwd(x, y), True)
                + gan_loss(cfg.gan_loss, d_fwd(x, fake.detach()), False)
            )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # G: fool D, stay close to the truth in L1. D's weights need no gradients here.
        discriminator.requires_grad_(False)
        with autocast():
            loss_g_gan = gan_loss(cfg.gan_loss, d_fwd(x, fake), True)
        loss_l1 = F.l1_loss(fake.float(), y)
        loss_g = loss_g_gan.float() + cfg.lambda_l1 * loss_l1
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return torch.stack([loss_d.detach().float(), loss_g_gan.detach().float(), loss_l1.detach(), one])

    return corr_step if cfg.objective == "corr" else step


@dataclass
class TrainResult:
    """What a run leaves behind."""

    run_dir: Path
    step: int
    epoch: int
    checkpoints: list[Path] = field(default_factory=list)
    wall_s: float = 0.0
    steps_per_s: float = 0.0
    crops_per_s: float = 0.0
    device: str = "cpu"
    history: list[dict[str, Any]] = field(default_factory=list)


def run_dir_of(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / cfg.name


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-save never leaves a truncated checkpoint behind
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # Our own files: they hold the config dict and RNG states besides tensors.
    return torch.load(path, map_location=map_location, weights_only=False)


def generator_from_checkpoint(path: str | Path) -> tuple[UNetGenerator, TrainConfig, dict[str, Any]]:
    """The generator (CPU, eval mode) and config saved in a checkpoint."""
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    generator = generator_for(cfg)
    generator.load_state_dict(state["generator"])
    return generator.eval(), cfg, state


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    on_checkpoint: Callable[[Path, int, int], dict[str, Any] | None] | None = None,
    log: Log = _print,
) -> TrainResult:
    """Train per ``cfg``; returns where the checkpoints are.

    ``on_checkpoint(path, epoch, step)`` is called after every ``eval_every``-epoch
    checkpoint and the last one (the retrain chain scores it on val there); what it
    returns goes into the run's history.
    """
    # ---------------------------------------------------------------- setup
    t_setup = time.perf_counter()
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    cuda = device.type == "cuda"
    if cuda:
        # TF32 for the fp32 parts (the autocast regions run in bf16 anyway).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out = run_dir_of(cfg)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(cfg.to_toml())

    days = split_days(cfg.data_dir)["train"]
    if cfg.train_days:
        days = days[: cfg.train_days]
    data = DeviceDays(days, device, threads=max(1, torch.get_num_threads()), scaling=cfg.scaling)
    n_days = len(data)
    spe = steps_per_epoch(n_days, cfg.batch_size)
    total_steps = cfg.epochs * spe
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    log(f"train: {n_days} days on {device} ({data.times[0][:10]}..{data.times[-1][:10]}), "
        f"{spe} steps/epoch, {total_steps} steps, order {cfg.order}, loaded in "
        f"{time.perf_counter() - t_setup:.1f} s")

    generator, discriminator = build_models(cfg)
    generator.to(device)
    discriminator.to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    generator.to(memory_format=memory_format)
    discriminator.to(memory_format=memory_format)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas)
    # Crops and flips: one generator on the device, its state checkpointed.
    crop_rng = torch.Generator(device=device).manual_seed(cfg.seed)

    step, epoch = 0, 0
    history: list[dict[str, Any]] = []
    if resume is not None:
        state = load_checkpoint(resume, map_location=device)
        saved = TrainConfig.from_dict(state["config"])
        if (saved.ngf, saved.depth, saved.norm, saved.ndf) != (cfg.ngf, cfg.depth, cfg.norm, cfg.ndf):
            raise ValueError(f"checkpoint {resume} is for another network ({saved.name})")
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        crop_rng.set_state(state["crop_rng"].cpu() if cuda else state["crop_rng"])
        torch.set_rng_state(state["torch_rng"].cpu())
        step, epoch = int(state["step"]), int(state["epoch"])
        history = list(state.get("history", []))
        log(f"resumed from {resume} at epoch {epoch}, step {step}")

    train_step = make_step(cfg, generator, discriminator, opt_g, opt_d, device)

    def checkpoint(tag: str) -> Path:
        return save_checkpoint(
            out / "checkpoints" / f"{tag}.pt",
            {
                "config": cfg.to_dict(),
                "step": step,
                "epoch": epoch,
                "generator": generator.state_dict(),
                "discriminator": discriminator.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "crop_rng": crop_rng.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "train_days": [data.times[0], data.times[-1], n_days],
            },
        )

    # ----------------------------------------------------------------- loop
    checkpoints: list[Path] = []
    sums = torch.zeros(4, device=device)  # D, G_gan, L1, steps: summed on the device
    t0 = time.perf_counter()
    t_last, step_last = t0, step
    first_step = step
    done = step >= total_steps
    while not done:
        factor = lr_factor(cfg, epoch)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor
        generator.train()
        discriminator.train()
        skip = step - epoch * spe  # a resumed run may start inside an epoch
        for k, index in enumerate(epoch_batches(n_days, cfg.batch_size, cfg.order, cfg.seed, epoch)):
            if k < skip:
                continue
            x, y, coords = data.batch(index, cfg.crop, crop_rng, cfg.flip_ns, cfg.flip_ew)
            x = x.contiguous(memory_format=memory_format)
            y = y.contiguous(memory_format=memory_format)
            coords = coords.contiguous(memory_format=memory_format)

            sums += train_step(x, y, coords)
            step += 1
            if step % cfg.log_every == 0 or step == total_steps:
                means = (sums[:3] / sums[3].clamp(min=1)).tolist()  # the only host sync
                sums.zero_()
                d, gg, l1 = means
                now = time.perf_counter()
                rate = (step - step_last) / max(now - t_last, 1e-9)
                eta = (total_steps - step) / max(rate, 1e-9)
                losses = (f"1-r {gg:.3f} MSE {l1:.5f}" if cfg.objective == "corr" else
                          f"D {d:.3f} G_gan {gg:.3f} L1 {l1:.4f} ({l1 * 200:.1f} G)")
                log(f"step {step}/{total_steps} epoch {step / spe:.2f} | {losses} | lr {cfg.lr * factor:.2e} | {rate:.2f} steps/s "
                    f"{rate * cfg.batch_size:.1f} crops/s | ETA {_hms(eta)}")
                t_last, step_last = now, step
            if step >= total_steps:
                done = True
                break
        if step == (epoch + 1) * spe:
            epoch += 1
        evaluate_now = on_checkpoint is not None and (done or epoch % cfg.eval_every == 0)
        if done or evaluate_now or epoch % cfg.checkpoint_every == 0:
            tag = "last" if done else f"epoch{epoch:04d}"
            path = checkpoint(tag)
            checkpoints.append(path)
            if evaluate_now:
                entry = on_checkpoint(path, epoch, step)
                if entry is not None:
                    history.append({"epoch": epoch, "step": step, "checkpoint": str(path), **entry})
                    checkpoint(tag)  # keep the history inside the checkpoint too

    wall = time.perf_counter() - t0
    steps_done = step - first_step
    result = TrainResult(
        run_dir=out,
        step=step,
        epoch=epoch,
        checkpoints=checkpoints,
        wall_s=wall,
        steps_per_s=steps_done / wall if wall > 0 else math.nan,
        crops_per_s=steps_done * cfg.batch_size / wall if wall > 0 else math.nan,
        device=str(device),
        history=history,
    )
    (out / "train.json").write_text(json.dumps(
        {"step": step, "epoch": epoch, "wall_s": wall, "steps_per_s": result.steps_per_s,
         "crops_per_s": result.crops_per_s, "device": str(device), "history": history,
         "checkpoints": [str(p) for p in checkpoints]}, indent=1, default=str))
    log(f"trained {steps_done} steps in {_hms(wall)} ({result.crops_per_s:.1f} crops/s on {device})")
    return result


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
