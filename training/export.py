"""Export a generator to ONNX for the service, and check the export against torch.

The file follows the ONNX model contract in ``docs/ARCHITECTURE.md``: input
``halpha`` float32 (N, 1, H, W) in model units, output ``bz`` float32 (N, 1, H, W)
in model units, N/H/W dynamic (H and W multiples of ``2**depth``, 256 for the
paper's depth 8), and string metadata props under ``synmag.*`` that the service
reads before it runs the model (it refuses a different preprocessing version).
"""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.science import preprocess
from service.science.output_scaling import DEFAULT as LINEAR_200
from service.science.output_scaling import OutputScaling

OPSET = 18
METADATA_PREFIX = "synmag."
# Keys every exported file carries (without the prefix); export fills the first four
# from service.science.preprocess, the caller gives the rest (or gets the defaults below).
REQUIRED_KEYS = (
    "preprocess_version",
    "units",
    "gauss_scale",
    "geometry",
    "config",
    "train_data_sha256",
    "git_commit",
    "version",
)
PARITY_TOLERANCE_G = 0.5


class ParityError(RuntimeError):
    """ONNX Runtime and torch disagree by more than the tolerance (in Gauss)."""


def _cpu_eval_copy(generator: torch.nn.Module) -> torch.nn.Module:
    """A float32 CPU copy in eval mode, so the caller's module keeps device, dtype and mode."""
    # torch.compile wraps the module; export and compare the module itself.
    module = getattr(generator, "_orig_mod", generator)
    model = copy.deepcopy(module).to("cpu", torch.float32).eval()
    return model.to(memory_format=torch.contiguous_format)


def git_commit(repo: Path | None = None) -> str:
    """The working tree's HEAD commit, ``"unknown"`` outside a git checkout."""
    cwd = repo or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def model_geometry() -> dict[str, Any]:
    """The model frame the generator was trained on, as ``synmag.geometry`` records it."""
    return {
        "size": [int(preprocess.MODEL_SIZE), int(preprocess.MODEL_SIZE)],
        "center": [float(c) for c in preprocess.MODEL_CENTER],
        "radius_px": float(preprocess.MODEL_RADIUS_PX),
    }


def build_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Contract metadata: defaults from preprocess, then the caller's entries, all strings.

    Keys may be given with or without the ``synmag.`` prefix; dicts and lists are
    written as JSON.
    """
    props: dict[str, Any] = {
        "preprocess_version": preprocess.PREPROCESS_VERSION,
        "units": "model",
        "gauss_scale": repr(float(preprocess.GAUSS_SCALE)),
        "geometry": model_geometry(),
        "config": {},
        "train_data_sha256": "unknown",
        "git_commit": None,
        "version": "",
    }
    for key, value in metadata.items():
        props[key.removeprefix(METADATA_PREFIX)] = value
    if "output_scaling" in props:  # a scaling object or its dict; gauss_scale is then its max_g
        scaling = props["output_scaling"]
        scaling = scaling if isinstance(scaling, OutputScaling) else OutputScaling.from_dict(
            json.loads(scaling) if isinstance(scaling, str) else scaling)
        props["output_scaling"] = scaling.to_json()
        props["gauss_scale"] = repr(float(scaling.max_g))
    if props["git_commit"] is None:
        props["git_commit"] = git_commit()
    out = {}
    for key, value in props.items():
        out[METADATA_PREFIX + key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def export_onnx(
    generator: torch.nn.Module,
    path: str | Path,
    metadata: Mapping[str, Any],
    weights: str = "float32",
) -> Path:
    """Write ``generator`` (in eval mode, on CPU, float32) to ``path`` as ONNX.

    Parameters
    ----------
    generator
        A ``training.model.UNetGenerator`` (any module with the same input/output).
    path
        Destination ``.onnx`` file (parent folders are created).
    metadata
        Extra ``synmag.*`` metadata (``config``, ``train_data_sha256``, ``git_commit``,
        ``version``, ...); see `build_metadata`.
    weights
        ``"float32"``, or ``"float16"`` to store the weights at half size
        (`store_weights_float16`); the graph computes in float32 either way.

    Returns
    -------
    Path
        The written file.
    """
    import onnx

    if weights not in ("float32", "float16"):
        raise ValueError(f"weights must be float32 or float16, got {weights!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    depth = int(getattr(generator, "depth", 8))
    # Inputs must be multiples of the working scale times 2**depth (1024 for scale 4).
    step = int(getattr(generator, "scale", 1)) * 2**depth
    model = _cpu_eval_copy(generator)
    # A 2-step example: with a 1-step one the bottleneck is 1x1 and torch.export would
    # specialise shapes on it.
    example = torch.zeros(1, 1, 2 * step, 2 * step)
    hk = torch.export.Dim("hk", min=1, max=max(1, 8192 // step))
    wk = torch.export.Dim("wk", min=1, max=max(1, 8192 // step))
    dynamic = {"x": {0: torch.export.Dim("n", min=1, max=256), 2: step * hk, 3: step * wk}}
    # The exporter logs one line per missing torchvision op (irrelevant here) and torch's
    # own pytree code raises a FutureWarning inside torch.export: neither is ours to fix.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\..*")
        with torch.no_grad():
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["halpha"],
                output_names=["bz"],
                opset_version=OPSET,
                dynamo=True,
                dynamic_shapes=dynamic,
                optimize=True,
                verbose=False,
            )
    proto = program.model_proto
    if weights == "float16":
        store_weights_float16(proto)
    del proto.metadata_props[:]
    for key, value in build_metadata(metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    tmp = path.with_suffix(path.suffix + ".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(path)
    return path


def store_weights_float16(proto: Any, min_elements: int = 64) -> int:
    """Store the float32 weights of ``proto`` as float16, cast back to float32 in the graph.

    Halves the file (the bundled model must stay under 32 MB) without asking the
    runtime for float16 kernels, which ONNX Runtime's CPU provider mostly lacks: the
    ``Cast`` nodes read only initializers, so the runtime folds them once when the
    session is created and every operator still runs in float32. The price is the
    rounding of each weight to 11 significant bits; ``parity`` measures it in Gauss.
    Small tensors (batch-norm statistics, biases) stay float32.

    Returns
    -------
    int
        Number of tensors converted.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    converted = 0
    for i, init in enumerate(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        array = numpy_helper.to_array(init)
        if array.size < min_elements:
            continue
        name = init.name  # read before CopyFrom renames ``init`` in place
        half_name = f"{name}__f16"
        graph.initializer[i].CopyFrom(numpy_helper.from_array(array.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [name], to=TensorProto.FLOAT,
                                      name=f"{name}__to_f32"))
        converted += 1
    # Cast nodes read initializers only, so they may lead the (topologically sorted) graph.
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return converted


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``synmag.*`` metadata props of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props if p.key.startswith(METADATA_PREFIX)}


def parity(
    generator: torch.nn.Module,
    onnx_path: str | Path,
    frames: np.ndarray,
    tolerance_g: float = PARITY_TOLERANCE_G,
    scaling: OutputScaling = LINEAR_200,
) -> dict[str, float]:
    """Run the same frames through torch (eval, float32, CPU) and ONNX Runtime.

    Parameters
    ----------
    frames
        H-alpha in model units, shape (N, H, W) or (N, 1, H, W) (real val frames).
    tolerance_g
        Largest allowed difference in Gauss.
    scaling
        The model's output scaling (how its output becomes Gauss).

    Returns
    -------
    dict
        ``max_abs_diff_g``, ``mean_abs_diff_g``, ``frames``, ``tolerance_g``.

    Raises
    ------
    ParityError
        When the largest difference exceeds ``tolerance_g``.
    """
    import onnxruntime as ort

    x = np.asarray(frames, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = _cpu_eval_copy(generator)
    worst = 0.0
    total = 0.0
    with torch.no_grad():
        for i in range(len(x)):
            ref = model(torch.from_numpy(x[i : i + 1])).numpy()
            got = session.run(["bz"], {"halpha": x[i : i + 1]})[0]
            diff = np.abs(scaling.to_gauss(got) - scaling.to_gauss(ref))
            worst = max(worst, float(diff.max()))
            total += float(diff.mean())
    result = {
        "max_abs_diff_g": worst,
        "mean_abs_diff_g": total / max(1, len(x)),
        "frames": int(len(x)),
        "tolerance_g": float(tolerance_g),
    }
    if not worst <= tolerance_g:
        raise ParityError(f"ONNX vs torch differ by {worst:.3f} G (> {tolerance_g} G) on {len(x)} frames")
    return result
