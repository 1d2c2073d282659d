"""One dataclass per training run, read from a TOML file in ``training/configs/``.

The config is saved inside every checkpoint (``TrainConfig.to_dict``) and every
exported model (``synmag.config``), so a version can always be traced back to
exactly how it was trained. TOML files hold flat ``key = value`` pairs named as
the fields below; unknown keys are an error (a typo must not silently fall back
to a default).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.errors import UsageError

# Decoder doublings of the generator (training/model.py): the paper's transposed
# convolution, or nearest-neighbour x2 + 3x3 convolution.
UPSAMPLE = ("transpose", "resize")
# What the generator is trained to minimise (training/train.py): pix2pix's GAN + L1, or a
# regression on the 8x8 block means that r_bin8 scores, with no discriminator.
OBJECTIVES = ("pix2pix", "corr")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class TrainConfig:
    """Everything that decides what a training run produces.

    Defaults are the paper's (Gao et al. 2023, pix2pix): U-Net depth 8, ngf 64,
    batch norm; 70x70 PatchGAN; vanilla GAN loss + 100 L1; Adam 2e-4 (0.5, 0.999);
    batch 8 of 512x512 crops; lr constant for 200 epochs then linear decay to 0.
    """

    name: str = "paper"
    # --- generator / discriminator -------------------------------------------
    ngf: int = 64
    depth: int = 8
    norm: str = "batch"  # batch | instance | none
    dropout: float = 0.5
    scale: int = 1  # working scale: the U-Net sees scale x scale block means (training/model.py)
    upsample: str = "transpose"  # decoder doubling: transpose (paper) | resize (no checkerboard; training/model.py)
    coords: bool = False  # position channels for the generator (training/model.py): hemisphere for Hale's law
    ndf: int = 64
    d_layers: int = 3  # 3 -> 70x70 receptive field
    # --- objective and optimiser ---------------------------------------------
    objective: str = "pix2pix"  # pix2pix (the paper) | corr (1 - r of 8x8 block means + lambda_mse MSE)
    lambda_mse: float = 10.0  # corr: weight of the MSE that ties the scale (r alone ignores it)
    gan_loss: str = "vanilla"  # vanilla (BCE with logits, the paper) | lsgan
    lambda_l1: float = 100.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 8
    crop: int = 512
    epochs_constant: int = 200
    epochs_decay: int = 200  # the paper kept epoch 380 (Model B) / 400 (Model A), chosen on val
    # --- data order and augmentation -------------------------------------------
    order: str = "chronological"  # chronological (Model B) | shuffled (Model A)
    # N-S flip with the target negated is an exact symmetry of Hale's and Joy's laws
    # (see training.data); E-W flip with negation keeps Hale but breaks Joy: off by default.
    flip_ns: bool = True
    flip_ew: bool = False
    # --- target units ------------------------------------------------------------
    # Gauss <-> model output (service/science/output_scaling.py), written into the ONNX metadata:
    # "linear:200" (the Ha2Mag data are clipped there) or "asinh:SCALE_G:MAX_G" for unclipped
    # built data, e.g. "asinh:100:3000" (linear below ~100 G, logarithmic up to 3 kG).
    output_scaling: str = "linear:200"
    seed: int = 0
    # --- hardware -------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    channels_last: bool = True
    compile: bool = False
    threads: int = 0  # torch CPU threads (0: torch's default)
    # --- bookkeeping ----------------------------------------------------------
    log_every: int = 50  # steps between progress lines (the only host syncs)
    eval_every: int = 20  # epochs between val evaluations / model-selection candidates
    eval_days: int = 0  # val days scored per evaluation (0: all)
    checkpoint_every: int = 20  # epochs between checkpoints (plus the last one)
    max_steps: int = 0  # stop after this many optimiser steps (0: run all epochs)
    train_days: int = 0  # use only the first N train days (0: all); for smoke tests
    data_dir: str = ""  # dataset root (set by the CLI's --data-dir)
    out_dir: str = "runs"  # a run writes under out_dir/name/
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the run

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        checks = [
            (self.norm in ("batch", "instance", "none"), f"norm {self.norm!r}"),
            (self.gan_loss in ("vanilla", "lsgan"), f"gan_loss {self.gan_loss!r}"),
            (self.order in ("chronological", "shuffled"), f"order {self.order!r}"),
            (self.upsample in UPSAMPLE, f"upsample {self.upsample!r}"),
            (self.objective in OBJECTIVES, f"objective {self.objective!r}"),
            (self.objective != "corr" or (self.crop % 8 == 0 and 8 % self.scale == 0),
             "corr needs crop a multiple of 8 and a working scale dividing 8"),
            (self.depth >= 2 and self.ngf >= 1 and self.ndf >= 1, "depth/ngf/ndf"),
            (self.crop % (self.scale * 2**self.depth) == 0, f"crop {self.crop} not a multiple of scale * 2**depth"),
            (self.scale >= 1, f"scale {self.scale} must be >= 1"),
            (self.batch_size >= 1, f"batch_size {self.batch_size}"),
            (self.epochs_constant >= 0 and self.epochs_decay >= 0, "epochs"),
            (self.epochs_constant + self.epochs_decay >= 1, "epochs_constant + epochs_decay < 1"),
            (0.0 <= self.dropout < 1.0, f"dropout {self.dropout}"),
            (self.log_every >= 1 and self.eval_every >= 1 and self.checkpoint_every >= 1, "*_every"),
        ]
        try:
            self.scaling  # noqa: B018 - parsed here so a bad value fails at load, not after training
        except ValueError as exc:
            checks.append((False, str(exc)))
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise UsageError(f"invalid training config {self.name!r}: " + ", ".join(bad))

    @property
    def scaling(self):  # -> service.science.output_scaling.OutputScaling
        """The output scaling of ``output_scaling``."""
        from service.science.output_scaling import OutputScaling

        return OutputScaling.parse(self.output_scaling)

    @property
    def epochs(self) -> int:
        return self.epochs_constant + self.epochs_decay

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON and TOML friendly)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown training config keys: {', '.join(unknown)}")
        kw = dict(data)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(**kw)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_toml(self) -> str:
        """TOML text that `load_config` reads back to an equal config."""
        lines = []
        tables = []
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, table in tables:
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (the CLI's ``--set``) -> ``(key, value)``; VALUE is read as TOML.

    ``ngf=32`` gives an int, ``order=shuffled`` a string (a bare word that is not a TOML
    value is taken as a string), ``betas=[0.5, 0.99]`` a list. Whether the key exists
    is checked with the rest of the config.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UsageError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key, tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value.strip()


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a TOML config; a bare name (``smoke``) means ``training/configs/smoke.toml``.

    ``overrides`` (non-None values) replace what the file says, e.g. ``data_dir``.
    """
    path = Path(path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{path.name}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"training config not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    data.setdefault("name", path.stem)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data)
