"""The nowcast head: a small U-Net on the 128x128 grid on top of the H-alpha-only generator.

Inputs, all in the model frame, block-averaged 8x8 to 128x128 inside the graph:
H-alpha (model units), the H-alpha-only generator's output ``halpha_bz`` (model units),
the prior rotated to the frame's time (model units, 0 where unseen), the seen map, and
the prior's age (hours / 168, as a constant plane).

Outputs, per 128x128 pixel: a weight ``a`` in [0, 1] of the prior, a weight ``b`` of the
H-alpha-only generator's field, a correction ``c`` and ``log sigma``. The field is
``a * prior + b * halpha_bz + c``, with ``a``, ``b``, ``c`` upsampled (bilinear) to 1024 in the
full-resolution forward: the fine structure (and so the pixel polarity that AR PPA counts)
comes from the two full-resolution maps, the prior where the head trusts it (young, seen)
and the generator where it does not (old priors, the east band, new flux); the smooth
correction adds what neither has. r_bin8 (the 8x8-binned correlation) lives on the 128 grid.

``halpha_bz`` enters with the generator's polarity made the frame's: the service multiplies
it by ``halpha_sign`` (Hale's law of the frame's cycle against the generator's training
cycle, ``service.science.cycles``), so a new region far from any prior gets the polarity the
H-alpha-only product would give it, in cycle 25 as in 24.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nowcast.config import NowcastConfig

POOL = 8
AGE_SCALE_H = 168.0
IN_CHANNELS = 5
LOG_SIGMA_MIN = -7.0  # sigma >= 0.18 G in model units of 200 G: keeps the NLL finite


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
    )


class NowcastHead(nn.Module):
    """U-Net on the pooled grid: (N, 5, 128, 128) -> gate, correction, log sigma (N, 1, 128, 128) each."""

    def __init__(self, cfg: NowcastConfig) -> None:
        super().__init__()
        ch = cfg.channels
        self.down = nn.ModuleList([block(IN_CHANNELS, ch[0])] +
                                  [block(ch[i - 1], ch[i]) for i in range(1, len(ch))])
        self.up = nn.ModuleList([block(ch[i] + ch[i - 1], ch[i - 1]) for i in range(len(ch) - 1, 0, -1)])
        self.out = nn.Conv2d(ch[0], 4, 1)
        # Start as persistence: prior weight ~1, no generator, no correction, sigma ~ 40 G.
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor([3.0, 0.0, 0.0, -1.6]))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        skips = []
        h = feats
        for i, d in enumerate(self.down):
            if i:
                h = F.avg_pool2d(h, 2)
            h = d(h)
            skips.append(h)
        for u in self.up:
            skips.pop()
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = u(torch.cat([h, skips[-1]], 1))
        o = self.out(h)
        return torch.sigmoid(o[:, 0:1]), o[:, 1:2], o[:, 2:3], torch.clamp(o[:, 3:4], min=LOG_SIGMA_MIN)

    @staticmethod
    def field(weights: tuple[torch.Tensor, ...], prior: torch.Tensor, halpha_bz: torch.Tensor) -> torch.Tensor:
        """``a * prior + b * halpha_bz + c`` (weights on the grid of the two maps)."""
        a, b, c = weights[:3]
        return a * prior + b * halpha_bz + c


def features(halpha: torch.Tensor, halpha_bz: torch.Tensor, prior: torch.Tensor, seen: torch.Tensor,
             age_h: torch.Tensor) -> torch.Tensor:
    """The head's input planes on the pooled grid (inputs already pooled, (N, 1, h, w) each)."""
    age = (age_h.reshape(-1, 1, 1, 1) / AGE_SCALE_H).expand_as(prior)
    return torch.cat([halpha, halpha_bz, prior, seen, age], 1)


class Nowcast(nn.Module):
    """The full-resolution nowcast given the generator's output: what the ONNX head graph computes.

    ``forward(halpha, halpha_bz, prior, prior_seen, prior_age_h, halpha_sign)`` with (N, 1, H, W)
    planes (H, W multiples of 8), age (N, 1) in hours and the generator's polarity sign (N, 1)
    -> ``bz`` and ``sigma`` (N, 1, H, W), model units.
    """

    def __init__(self, cfg: NowcastConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.head = NowcastHead(cfg)

    def pooled(self, halpha, halpha_bz, prior, seen, age_h):
        return self.head(features(*(F.avg_pool2d(t, POOL) for t in (halpha, halpha_bz, prior, seen)), age_h))

    def weights(self, halpha, halpha_bz, prior, prior_seen, prior_age_h):
        """The head's ``a``, ``b``, ``c``, ``log sigma`` upsampled (bilinear) to the planes' size."""
        out = self.pooled(halpha, halpha_bz, prior, prior_seen, prior_age_h)
        size = prior.shape[-2:]
        return [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in out]

    def forward(self, halpha, halpha_bz, prior, prior_seen, prior_age_h, halpha_sign):
        halpha_bz = halpha_bz * halpha_sign.reshape(-1, 1, 1, 1)
        up = self.weights(halpha, halpha_bz, prior, prior_seen, prior_age_h)
        return publish(up[0], up[1], up[2], prior, halpha_bz), torch.exp(up[3])


def publish(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, prior: torch.Tensor,
            halpha_bz: torch.Tensor) -> torch.Tensor:
    """The published field at full resolution: the magnitude of ``a*prior + b*halpha_bz + c``
    with the sign of the full-resolution part ``a*prior + b*halpha_bz``.

    The smooth correction ``c`` (8 px) learns where flux grew or decayed, but added as it is
    it flips the signs of fine mixed-polarity structure it cannot resolve: on val it cost
    0.03-0.04 of active-region PPA(20 G) at every prior age for no r_bin8 (measured on
    14-26 val days: 1 d AR PPA 0.796 -> 0.833, r_bin8 0.773 -> 0.772; 3 d 0.705 -> 0.725,
    r_bin8 0.503 -> 0.485). So ``c`` sets magnitudes and the two maps the pixel polarity.
    """
    fine = a * prior + b * halpha_bz
    full = fine + c
    sign = torch.where(fine == 0, torch.sign(full), torch.sign(fine))
    return sign * full.abs()
