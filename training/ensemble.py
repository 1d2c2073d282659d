"""Average of generators, optionally with the N-S flip as a test-time view.

Why: single pix2pix runs differ a lot from seed to seed (Liu et al. 2021 measured
run-to-run variance; our cpu-v1 seeds spread 0.23 +- 0.09 in r_bin8), and the
adversarial loss makes each one draw its own small-scale structure. The mean of
several runs keeps what they agree on, which is what the correlation and polarity
metrics reward.

The N-S view uses the symmetry the generators were trained with (``training.data``):
a frame flipped north-south shows the other hemisphere, whose Hale polarity is the
opposite, so ``-flip(G(flip(x)))`` is a second, equally valid prediction of the same
frame. Only exact symmetries are used: no E-W view, which would reverse Joy's tilt.

An optional Gaussian smoothing (``smooth_sigma_px``) of the mean comes last: the
small-scale structure the adversarial loss draws (and the transposed convolutions'
checkerboard) has no counterpart that H-alpha determines, and on val the correlation
and polarity scores rise steadily with a few pixels of smoothing (the model card gives
the figures). It costs resolution: features finer than ~2 sigma are washed out.

Averaging and smoothing shrink the amplitude (the members' small-scale fields cancel),
so a ``gain`` may follow, fitted on val so that the unsigned flux matches HMI's on
average; the result is clipped to the data's +-200 G. A gain leaves the correlations and
the polarity scores as they are and puts the published Gauss back on HMI's scale.

The module has the generator's interface (input and output in model units, position
channels made inside), so ``training.export.export_onnx`` writes it as one graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from training.model import UNetGenerator


class Ensemble(nn.Module):
    """Mean prediction of ``members`` (each a ``UNetGenerator``), plus their N-S view.

    Parameters
    ----------
    members
        Generators with the same depth and working scale (the input-size rule of the
        exported graph comes from them).
    ns_view
        Also average ``-flip_rows(G(flip_rows(x)))`` of every member.
    smooth_sigma_px
        Standard deviation (model-frame pixels) of a Gaussian applied to the mean;
        0 for none.
    gain
        Factor applied last, followed by clipping to the model range [-1, 1].
    """

    def __init__(
        self,
        members: Sequence[UNetGenerator],
        ns_view: bool = True,
        smooth_sigma_px: float = 0.0,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shapes = {(int(m.depth), int(m.scale)) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"members differ in depth or working scale: {sorted(shapes)}")
        self.members = nn.ModuleList(members)
        self.ns_view = ns_view
        self.depth, self.scale = shapes.pop()
        if not smooth_sigma_px >= 0:
            raise ValueError(f"smooth_sigma_px must be >= 0, got {smooth_sigma_px}")
        self.smooth_sigma_px = float(smooth_sigma_px)
        if not gain > 0:
            raise ValueError(f"gain must be > 0, got {gain}")
        self.gain = float(gain)
        self.register_buffer("kernel", gaussian_kernel(self.smooth_sigma_px), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return finish(self.mean_of_views(x), self.kernel, self.gain)

    def mean_of_views(self, x: torch.Tensor) -> torch.Tensor:
        """The plain mean of every member and view, before smoothing and gain."""
        outs = [m(x) for m in self.members]
        if self.ns_view:
            flipped = x.flip(-2)
            outs += [-m(flipped).flip(-2) for m in self.members]
        return torch.stack(outs).mean(0)


def finish(mean: torch.Tensor, kernel: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Smooth with ``kernel`` (a single 1: none), then apply ``gain`` and clip to [-1, 1]."""
    if kernel.numel() > 1:
        mean = smooth(mean, kernel)
    if gain != 1.0:
        mean = (mean * gain).clamp(-1.0, 1.0)
    return mean


def gaussian_kernel(sigma_px: float) -> torch.Tensor:
    """Normalised 1-D Gaussian out to 3 sigma (a single 1 for sigma 0)."""
    if sigma_px <= 0:
        return torch.ones(1)
    radius = max(1, math.ceil(3 * sigma_px))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma_px**2))
    return k / k.sum()


def smooth(y: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable convolution of (N, 1, H, W) ``y`` with ``kernel``, edges reflected."""
    r = kernel.numel() // 2
    k = kernel.to(y.dtype)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
