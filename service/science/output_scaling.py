"""How a generator's output unit maps to Gauss: one scaling per model, recorded in its metadata.

The Ha2Mag targets are clipped at +-200 G, so the first models learned ``y = B / 200``
(``preprocess.gauss_to_model``). Data built from the archives (``training.dataset``) keep the
field unclipped: active regions reach +-3 kG, and a linear map wide enough for them leaves
the quiet Sun (a few G) a few thousandths of the output range. A model trained on such data
says in its ONNX metadata which scaling it learned (``synmag.output_scaling``, JSON of
:meth:`OutputScaling.to_json`), and training and serving decode it here, nowhere else:

``linear``  ``y = clip(B, -max_g, max_g) / max_g`` (the first models: ``max_g`` 200).
``asinh``   ``y = asinh(clip(B, -max_g, max_g) / scale_g) / asinh(max_g / scale_g)``: linear
            below ``scale_g`` (quiet Sun and plage keep their resolution), logarithmic above
            (spots up to ``max_g`` still fit in ``[-1, 1]``).

Both are odd functions, so a polarity sign (``science.cycles``) commutes with them. A model
without the metadata is ``linear`` 200 (:data:`DEFAULT`): every model made before keeps its
meaning, so ``PREPROCESS_VERSION`` did not change. ``synmag.gauss_scale`` stays the Gauss of
``|y| = 1`` (``max_g``), and the two must agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.science.preprocess import GAUSS_SCALE

__all__ = ["DEFAULT", "KINDS", "OutputScaling"]

KINDS = ("linear", "asinh")
METADATA_KEY = "output_scaling"  # synmag.output_scaling


@dataclass(frozen=True)
class OutputScaling:
    """One output scaling (see the module docstring).

    Attributes
    ----------
    kind : str
        ``linear`` or ``asinh``.
    max_g : float
        Gauss of ``|y| = 1``; fields beyond are clipped to it.
    scale_g : float
        ``asinh``: the field where the map turns from linear to logarithmic (ignored by ``linear``).
    """

    kind: str = "linear"
    max_g: float = GAUSS_SCALE
    scale_g: float = GAUSS_SCALE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown output scaling {self.kind!r} (one of {', '.join(KINDS)})")
        if not (math.isfinite(self.max_g) and self.max_g > 0 and math.isfinite(self.scale_g) and self.scale_g > 0):
            raise ValueError(f"output scaling needs max_g > 0 and scale_g > 0, got {self.max_g}, {self.scale_g}")

    @property
    def norm(self) -> float:
        """``asinh(max_g / scale_g)``: what makes ``|y| = 1`` at ``max_g``."""
        return math.asinh(self.max_g / self.scale_g)

    def to_model(self, gauss: np.ndarray) -> np.ndarray:
        """Gauss -> model output units (float32, clipped at ``max_g``; NaN kept)."""
        b = np.clip(np.asarray(gauss, dtype=np.float32), -self.max_g, self.max_g)
        if self.kind == "linear":
            return (b / np.float32(self.max_g)).astype(np.float32)
        return (np.arcsinh(b / np.float32(self.scale_g)) / np.float32(self.norm)).astype(np.float32)

    def to_gauss(self, y: np.ndarray) -> np.ndarray:
        """Model output units -> Gauss (float32); values beyond ``|y| = 1`` are extrapolated, not clipped."""
        y = np.asarray(y, dtype=np.float32)
        if self.kind == "linear":
            return (y * np.float32(self.max_g)).astype(np.float32)
        return (np.sinh(y * np.float32(self.norm)) * np.float32(self.scale_g)).astype(np.float32)

    def to_service_units(self, y: np.ndarray) -> np.ndarray:
        """Model output -> the service's linear unit (Gauss / ``GAUSS_SCALE``), which
        ``preprocess.postprocess`` turns into Gauss; the default scaling passes ``y`` through."""
        if self == DEFAULT:
            return np.asarray(y, dtype=np.float32)
        return (self.to_gauss(y) / np.float32(GAUSS_SCALE)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "max_g": float(self.max_g)}
        if self.kind == "asinh":
            out["scale_g"] = float(self.scale_g)
        return out

    def to_json(self) -> str:
        """The ``synmag.output_scaling`` metadata value."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputScaling:
        kind = str(data.get("kind", "linear"))
        max_g = float(data.get("max_g", GAUSS_SCALE))
        return cls(kind, max_g, float(data.get("scale_g", max_g)))

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> OutputScaling:
        """The scaling a model's ``synmag.*`` metadata (prefix removed) records.

        Absent: :data:`DEFAULT`. Raises ``ValueError`` for an unknown kind, bad numbers, or a
        ``gauss_scale`` that is not the scaling's ``max_g``.
        """
        raw = metadata.get(METADATA_KEY)
        try:
            scaling = DEFAULT if not raw else cls.from_dict(json.loads(raw))
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"synmag.{METADATA_KEY} {raw!r} is not a JSON object") from exc
        if "gauss_scale" in metadata:
            try:
                scale = float(metadata["gauss_scale"])
            except ValueError:
                scale = float("nan")
            if scale != scaling.max_g:
                raise ValueError(f"synmag.gauss_scale {metadata['gauss_scale']!r} != the output scaling's "
                                 f"max_g {scaling.max_g}")
        return scaling

    @classmethod
    def parse(cls, text: str) -> OutputScaling:
        """``linear:200`` or ``asinh:SCALE:MAX`` (a training config's ``output_scaling``)."""
        parts = text.strip().split(":")
        try:
            if parts[0] == "linear" and len(parts) == 2:
                return cls("linear", float(parts[1]), float(parts[1]))
            if parts[0] == "asinh" and len(parts) == 3:
                return cls("asinh", float(parts[2]), float(parts[1]))
        except ValueError:
            pass
        raise ValueError(f"output scaling {text!r}: expected 'linear:MAX_G' or 'asinh:SCALE_G:MAX_G'")


DEFAULT = OutputScaling("linear", GAUSS_SCALE, GAUSS_SCALE)
