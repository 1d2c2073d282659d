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

The module has the generator's interface (input and output in model units, position
channels made inside), so ``training.export.export_onnx`` writes it as one graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

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
    """

    def __init__(self, members: Sequence[UNetGenerator], ns_view: bool = True) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shapes = {(int(m.depth), int(m.scale)) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"members differ in depth or working scale: {sorted(shapes)}")
        self.members = nn.ModuleList(members)
        self.ns_view = ns_view
        self.depth, self.scale = shapes.pop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [m(x) for m in self.members]
        if self.ns_view:
            flipped = x.flip(-2)
            outs += [-m(flipped).flip(-2) for m in self.members]
        return torch.stack(outs).mean(0)
