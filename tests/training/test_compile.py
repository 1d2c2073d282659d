"""The compiled training step (``compile = true``: paper.toml, gpu-slim.toml) trains as the eager one.

No GPU has run it yet; what torch.compile captures (graphs, guards, recompiles) is the same
on the CPU, so a graph break or a recompile on every step shows here before it costs device
time. Dropout is off: compiled and eager code draw their masks from different generators.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import load_config
from training.train import build_models, make_step, seed_everything

pytestmark = [
    pytest.mark.slow,
    # Warnings of torch's own compile machinery (it touches torch.jit, and reads .grad of
    # the tensors it traces): not our code, and only warnings in a real run.
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning"),
]


def losses_of(compile: bool, steps: int = 3) -> tuple[list[list[float]], int]:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    cfg = load_config("smoke", dropout=0.0, coords=True, device="cpu", compile=compile)
    seed_everything(0)
    generator, discriminator = build_models(cfg)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas)
    step = make_step(cfg, generator, discriminator, opt_g, opt_d, torch.device("cpu"))
    rng = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 256, 256, generator=rng) * 2 - 1
    y = (torch.randn(2, 1, 256, 256, generator=rng) * 0.3).clamp(-1, 1)
    coords = torch.rand(2, 2, 256, 256, generator=rng) * 2 - 1
    losses = [step(x, y, coords).tolist() for _ in range(steps)]
    graphs = int(counters["stats"]["unique_graphs"])
    torch._dynamo.reset()
    return losses, graphs


def test_compiled_step_trains_as_the_eager_one() -> None:
    eager, _ = losses_of(compile=False)
    compiled, graphs = losses_of(compile=True)
    np.testing.assert_allclose(compiled, eager, rtol=2e-3, atol=1e-4)
    # G, D on real pairs, D on generated ones (its target needs grad): nothing recompiled per step.
    assert graphs <= 3
