"""One ONNX file for the nowcast: the H-alpha-only generator and the nowcast head composed.

The head needs the generator's output (``halpha_bz``). Rather than make the service
run two files in a fixed pairing, the export splices the bundled generator's graph into
the head's: one file, one version, one sha256; the generator it was trained on cannot
be swapped under it. Seeds are averaged inside the graph (mean field; sigma from the
seeds' own sigmas and their spread).

Contract (``docs/ARCHITECTURE.md``, ONNX contract v2): inputs ``halpha`` (N, 1, H, W),
``prior`` (N, 1, H, W, model units, 0 where unseen), ``prior_seen`` (N, 1, H, W, 0/1),
``prior_age_h`` (N, 1), ``halpha_sign`` (N, 1: the generator's polarity made the frame's
cycle's, ``service.science.cycles.polarity_sign``); outputs ``bz`` and ``sigma`` (model units); metadata
``synmag.kind = nowcast``, ``synmag.inputs``, ``synmag.calibration`` (JSON, see
``service.science.uncertainty``), ``synmag.polarity = prior`` (no sign rule: polarity
comes from the prior), and the usual keys of ``training.export.build_metadata``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.export import OPSET, build_metadata, store_weights_float16
from training.nowcast.model import Nowcast, publish

INPUTS = ("halpha", "prior", "prior_seen", "prior_age_h", "halpha_sign")
OUTPUTS = ("bz", "sigma")
SIZE = 1024


class SeedEnsemble(nn.Module):
    """Seeds averaged: their weights ``a``, ``b``, ``c`` averaged, then published once
    (``training.nowcast.model.publish``); sigma^2 = mean of the seeds' sigma^2 + the variance
    of their fields."""

    def __init__(self, models: Sequence[Nowcast]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, halpha, halpha_bz, prior, prior_seen, prior_age_h, halpha_sign):
        halpha_bz = halpha_bz * halpha_sign.reshape(-1, 1, 1, 1)
        ups = [m.weights(halpha, halpha_bz, prior, prior_seen, prior_age_h) for m in self.models]
        mean = [torch.stack([u[k] for u in ups]).mean(0) for k in range(3)]
        mu = publish(*mean, prior, halpha_bz)
        fields = [u[0] * prior + u[1] * halpha_bz + u[2] for u in ups]
        centre = torch.stack(fields).mean(0)
        var = torch.stack([torch.exp(2 * u[3]) + (f - centre) ** 2 for u, f in zip(ups, fields, strict=True)]).mean(0)
        return torch.clamp(mu, -1.0, 1.0), torch.sqrt(var)


def export_head(module: nn.Module) -> Any:
    """The head (generator output given as the input ``halpha_bz``) as an ONNX ModelProto."""
    planes = [torch.zeros(1, 1, SIZE, SIZE) for _ in range(4)]
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            program = torch.onnx.export(
                module.eval(), (*planes, torch.full((1, 1), 24.0), torch.ones((1, 1))),
                input_names=["halpha", "halpha_bz", "prior", "prior_seen", "prior_age_h", "halpha_sign"],
                output_names=list(OUTPUTS), opset_version=OPSET, dynamo=True, optimize=True, verbose=False,
            )
    return program.model_proto


def compose(generator_path: str | Path, head: Any) -> Any:
    """The generator's graph feeding the head's ``halpha_bz``; one graph, inputs ``INPUTS``."""
    import onnx
    from onnx import helper

    gen = onnx.load(str(generator_path))

    def gname(n: str) -> str:
        return n if n in ("", "halpha") else ("halpha_bz" if n == "bz" else f"gen/{n}")

    def hname(n: str) -> str:
        return n if n in ("", "halpha", "halpha_bz", *INPUTS, *OUTPUTS) else f"head/{n}"

    for graph, rename, tag in ((gen.graph, gname, "gen"), (head.graph, hname, "head")):
        for node in graph.node:
            node.input[:] = [rename(i) for i in node.input]
            node.output[:] = [rename(o) for o in node.output]
            node.name = f"{tag}/{node.name}"
        for init in graph.initializer:
            init.name = rename(init.name)
        for vi in graph.value_info:
            vi.name = rename(vi.name)
    inputs = [i for i in gen.graph.input if i.name == "halpha"] + [i for i in head.graph.input if i.name in INPUTS[1:]]
    graph = helper.make_graph(
        list(gen.graph.node) + list(head.graph.node), "synmag_nowcast", inputs, list(head.graph.output),
        initializer=list(gen.graph.initializer) + list(head.graph.initializer),
        value_info=list(gen.graph.value_info) + list(head.graph.value_info),
    )
    opsets: dict[str, int] = {}
    for m in (gen, head):
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              ir_version=max(gen.ir_version, head.ir_version))
    model.functions.extend(list(gen.functions) + list(head.functions))
    return model


def export_nowcast(models: Sequence[Nowcast], generator_path: str | Path, path: str | Path,
                   metadata: Mapping[str, Any]) -> Path:
    """Write the composed nowcast file (head weights stored as float16, see ``store_weights_float16``)."""
    import onnx

    head = export_head(SeedEnsemble(models))
    store_weights_float16(head)
    model = compose(generator_path, head)
    for key, value in build_metadata({**metadata, "kind": "nowcast", "inputs": list(INPUTS),
                                      "outputs": list(OUTPUTS), "polarity": "prior"}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    onnx.save_model(model, str(tmp))
    tmp.replace(path)
    return path


def parity(models: Sequence[Nowcast], generator_path: str | Path, path: str | Path,
           feeds: Mapping[str, np.ndarray]) -> float:
    """Largest |ONNX - torch| in Gauss of the composed file on ``feeds`` (the generator run by ORT)."""
    import onnxruntime as ort

    gen = ort.InferenceSession(str(generator_path), providers=["CPUExecutionProvider"])
    (base,) = gen.run(["bz"], {"halpha": feeds["halpha"]})
    with torch.no_grad():
        ref, _ = SeedEnsemble(models).eval()(*(torch.from_numpy(a) for a in (
            feeds["halpha"], base, feeds["prior"], feeds["prior_seen"], feeds["prior_age_h"], feeds["halpha_sign"])))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["bz"], dict(feeds))[0]
    return float(np.abs(got - ref.numpy()).max() * 200.0)
