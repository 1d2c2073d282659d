"""The generator as an ONNX Runtime session, loaded once and checked against the contract.

Contract (docs/ARCHITECTURE.md, "ONNX model contract"): string metadata props
``synmag.*`` and, by ``synmag.kind`` (absent: ``halpha``, the files of before the nowcast):

- ``halpha``: input ``halpha`` float32 (N, 1, H, W) in model units; output ``bz``.
- ``nowcast``: inputs ``halpha``, ``prior`` (model units, 0 where unseen), ``prior_seen``
  (0/1), ``prior_age_h`` (N, 1) and ``halpha_sign`` (N, 1: the Hale sign of the frame's cycle
  against the generator's, which the graph applies to its internal H-alpha-only field);
  outputs ``bz`` and ``sigma`` (model units).

A model whose inputs are not those of its kind is refused: the service could not feed
it. So is a model built for another preprocessing version
(``synmag.preprocess_version``): its inputs would be scaled differently from what it
learned, and its outputs silently wrong. ``synmag.calibration`` (optional, JSON) is the
uncertainty calibration (:mod:`service.science.uncertainty`); a malformed one is refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import ModelIncompatible
from service.science.output_scaling import DEFAULT as LINEAR_200
from service.science.output_scaling import OutputScaling
from service.science.preprocess import PREPROCESS_VERSION
from service.science.uncertainty import Calibration
from service.vocabulary import ModelKind

if TYPE_CHECKING:
    from service.settings import Settings

INPUT_NAME = "halpha"
OUTPUT_NAME = "bz"
SIGMA_NAME = "sigma"
INPUTS: dict[ModelKind, tuple[str, ...]] = {
    ModelKind.HALPHA: (INPUT_NAME,),
    ModelKind.NOWCAST: (INPUT_NAME, "prior", "prior_seen", "prior_age_h", "halpha_sign"),
}
PREFIX = "synmag."
REQUIRED_METADATA = ("preprocess_version", "units", "gauss_scale")
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
SIZE_MULTIPLE = 256  # H and W must be multiples of this (generator depth 8)

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (ORT's own default ignores affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def provider_list(providers: Sequence[str], trt_cache_dir: str | Path | None = None) -> list[Any]:
    """``providers`` as ONNX Runtime takes them, TensorRT with its caches when a folder is given."""
    out: list[Any] = []
    for name in providers:
        if name == "TensorrtExecutionProvider" and trt_cache_dir is not None:
            cache = Path(trt_cache_dir)
            cache.mkdir(parents=True, exist_ok=True)
            out.append((name, {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(cache),
            }))
        else:
            out.append(name)
    return out


@functools.cache
def preload_gpu_libraries() -> None:
    """Load CUDA and cuDNN from the ``nvidia-*`` wheels before a GPU session is made.

    The ``gpu`` extra installs onnxruntime-gpu with CUDA and cuDNN as pip wheels; the
    CUDA provider finds them only once ``onnxruntime.preload_dlls()`` has loaded them
    (or through LD_LIBRARY_PATH). A CPU build has nothing to load and returns at once.
    Once per process. A failure is logged, not raised: the provider check that follows
    the session's creation says what became of the GPU.
    """
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:  # onnxruntime before 1.21
        return
    try:
        preload()
    except Exception as exc:  # a broken or partial CUDA install
        log.warning("onnxruntime.preload_dlls failed (%s): the GPU provider may not load", exc)


class OnnxGenerator:
    """A synmag generator loaded in ONNX Runtime.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.onnx`` file.
    providers : sequence of str
        ONNX Runtime execution providers, in order of preference.
    require_gpu : bool
        Refuse (``ModelIncompatible``) when no CUDA/TensorRT provider is active.
    threads : int, optional
        Intra-op threads for the CPU provider; default ``default_threads()``.
    trt_cache_dir : str or pathlib.Path, optional
        Where the TensorRT provider keeps its engine and timing caches. Building the
        engine of a 1024x1024 U-Net takes minutes; with the cache only the first start
        of a model version pays it (the cache is keyed by the model). None: no cache.
    solar_cycle : int, optional
        The cycle whose Hale polarity the model learned, for a model whose metadata does
        not say (``synmag.solar_cycle``; models exported before session 5 lack it). Sets
        ``.solar_cycle``; the metadata wins when present.

    Raises
    ------
    service.errors.ModelIncompatible
        Missing file, unreadable model, missing ``synmag.*`` metadata, another
        preprocessing version, other units or Gauss scale, wrong input/output names,
        or no GPU provider when one is required.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        require_gpu: bool = False,
        threads: int | None = None,
        trt_cache_dir: str | Path | None = None,
        solar_cycle: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelIncompatible(f"model file not found: {self.path}")
        if any(p in GPU_PROVIDERS for p in providers):
            preload_gpu_libraries()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: provider fallbacks are checked below
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=provider_list(providers, trt_cache_dir)
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelIncompatible(f"cannot load ONNX model {self.path.name}: {exc}") from exc

        props = self.session.get_modelmeta().custom_metadata_map or {}
        self.metadata: dict[str, str] = {
            k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)
        }
        self._check_contract()
        self.active_providers: list[str] = list(self.session.get_providers())
        if require_gpu and not any(p in GPU_PROVIDERS for p in self.active_providers):
            raise ModelIncompatible(
                f"a GPU provider is required but only {', '.join(self.active_providers)} "
                f"is active (asked for {', '.join(providers)})"
            )
        self.calibration = self._calibration()
        self.sha256 = file_sha256(self.path)
        self.version = self.metadata.get("version") or f"sha256:{self.sha256[:12]}"
        # Polarity convention (service.science.cycles): None = unknown, output kept as it is.
        self.solar_cycle: int | None = solar_cycle
        if "solar_cycle" in self.metadata:
            try:
                self.solar_cycle = int(self.metadata["solar_cycle"])
            except ValueError:
                raise ModelIncompatible(
                    f"{self.path.name}: synmag.solar_cycle {self.metadata['solar_cycle']!r} is not a number"
                ) from None

    @classmethod
    def from_settings(cls, path: str | Path, settings: Settings, *, require_gpu: bool = False) -> OnnxGenerator:
        """``path`` loaded as every synmag process loads a model: ``SYNMAG_PROVIDERS``, the
        TensorRT cache folder and the solar-cycle fallback of ``settings``."""
        return cls(path, providers=settings.providers, require_gpu=require_gpu,
                   trt_cache_dir=settings.trt_cache_dir, solar_cycle=settings.model_solar_cycle)

    def _check_contract(self) -> None:
        name = self.path.name
        missing = [PREFIX + k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise ModelIncompatible(f"{name}: missing metadata {', '.join(missing)}")
        version = self.metadata["preprocess_version"]
        if version != PREPROCESS_VERSION:
            raise ModelIncompatible(
                f"{name} was built for preprocessing version {version!r}, this software "
                f"uses {PREPROCESS_VERSION!r}: retrain or export for this version"
            )
        if self.metadata["units"] != "model":
            raise ModelIncompatible(f"{name}: synmag.units is {self.metadata['units']!r}, not 'model'")
        try:  # the output unit (synmag.output_scaling, default linear 200 G): infer decodes it
            self.output_scaling = OutputScaling.from_metadata(self.metadata)
        except ValueError as exc:
            raise ModelIncompatible(f"{name}: {exc}") from None
        try:
            self.kind = ModelKind(self.metadata.get("kind", ModelKind.HALPHA))
        except ValueError:
            raise ModelIncompatible(f"{name}: unknown synmag.kind {self.metadata['kind']!r}") from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        expected = list(INPUTS[self.kind])
        if inputs != expected or OUTPUT_NAME not in outputs:
            raise ModelIncompatible(
                f"{name}: a {self.kind} model with inputs {inputs} / outputs {outputs}; this service "
                f"feeds {expected} and reads {OUTPUT_NAME!r}"
            )
        self.has_sigma = SIGMA_NAME in outputs
        if self.output_scaling != LINEAR_200 and (self.kind != ModelKind.HALPHA or self.has_sigma):
            # prior inputs and sigma are in linear 200 G units: only bz is decoded per the scaling
            raise ModelIncompatible(f"{name}: output scaling {self.output_scaling.to_json()} is for H-alpha "
                                    "models without sigma only")

    def _calibration(self) -> Calibration | None:
        raw = self.metadata.get("calibration")
        if not raw:
            return None
        try:
            return Calibration.from_json(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelIncompatible(f"{self.path.name}: synmag.calibration is malformed: {exc}") from None

    @property
    def polarity_from_prior(self) -> bool:
        """A nowcast takes its polarity from the prior: no Hale sign rule applies to its output."""
        return self.kind == ModelKind.NOWCAST

    @property
    def geometry(self) -> dict[str, Any] | None:
        """``synmag.geometry`` decoded (size, center, radius_px), or None."""
        raw = self.metadata.get("geometry")
        return json.loads(raw) if raw else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run the generator on one image.

        Parameters
        ----------
        x : numpy.ndarray
            float32 (H, W) in model units; H and W multiples of 256.

        Returns
        -------
        numpy.ndarray
            float32 (H, W) in the service's model units (Gauss / ``GAUSS_SCALE``, what
            ``preprocess.postprocess`` decodes), whatever output scaling the model learned.
        """
        return self.infer(x)[0]

    def infer(self, x: np.ndarray, prior: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the model on one image (and, for a nowcast, its prior inputs).

        Parameters
        ----------
        x : numpy.ndarray
            float32 (H, W) in model units; H and W multiples of 256.
        prior : dict, optional
            ``service.science.prior.model_inputs(...)``: required by a nowcast, refused
            by an H-alpha-only model.

        Returns
        -------
        bz, sigma : numpy.ndarray
            float32 (H, W) in model units; ``sigma`` None for a model without that output.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] % SIZE_MULTIPLE or x.shape[1] % SIZE_MULTIPLE:
            raise ValueError(f"input must be 2-D with sides multiple of {SIZE_MULTIPLE}, got {x.shape}")
        feeds = {INPUT_NAME: np.ascontiguousarray(x[None, None])}
        if (prior is None) != (self.kind == ModelKind.HALPHA):
            raise ValueError(f"a {self.kind} model {'takes no' if prior is not None else 'needs a'} prior")
        if prior is not None:
            feeds.update({k: prior[k] for k in INPUTS[self.kind][1:]})
        names = [OUTPUT_NAME] + ([SIGMA_NAME] if self.has_sigma else [])
        out = self.session.run(names, feeds)
        sigma = np.asarray(out[1][0, 0], dtype=np.float32) if self.has_sigma else None
        return self.output_scaling.to_service_units(out[0][0, 0]), sigma

    def __repr__(self) -> str:
        return f"OnnxGenerator({self.path.name!r}, version={self.version!r}, providers={self.active_providers})"
