"""The nowcast's training settings: one dataclass, saved inside every checkpoint and ONNX file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass
class NowcastConfig:
    """Settings of one nowcast training run (defaults: what two CPU cores finish in ~15 min)."""

    seed: int = 0
    channels: tuple[int, ...] = (16, 32, 64, 64)  # per level of the head's U-Net, finest first
    epochs: int = 16
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    # Priors 1..7 days old, uniformly: operation sees every age up to SYNMAG_PRIOR_MAX_AGE_H.
    min_age_days: int = 1
    max_age_days: int = 7
    # Prior, generator output and target negated together at random (a Sun of the other Hale
    # parity): polarity must come from the inputs, not from the training cycle. In service the
    # generator's output enters with the frame's cycle's sign (input ``halpha_sign``).
    sign_flip: bool = True
    # Weight of the Gaussian negative log-likelihood that trains the sigma output (the mean
    # is trained by MSE alone; the NLL sees it detached, so uncertainty cannot pull it).
    nll_weight: float = 0.1
    threads: int = 2

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NowcastConfig:
        raw = json.loads(text)
        raw["channels"] = tuple(raw["channels"])
        return cls(**raw)
