"""One H-alpha frame -> one product: decode, gate, preprocess, inference, postprocess, encode.

``run_frame`` does the work in memory and returns the FITS and PNG bytes with their
metadata and per-stage timings; it touches no store and no database, so the CLI
(``synmag process``) and the operational pipeline call the same function.
``process_frame`` is the thin wrapper that writes the two files to a folder.
"""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service import __version__
from service.errors import FrameRejected
from service.vocabulary import Reason, Stage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from service.science.frame import HalphaFrame

    Reader = Callable[[bytes, str | None], HalphaFrame]

    from service.inference.onnx_model import OnnxGenerator
    from service.science.preprocess import ModelGeometry

# The stages run_frame times (service.vocabulary.Stage), in order.
STAGES = (Stage.DECODE, Stage.GATE, Stage.PREPROCESS, Stage.INFERENCE, Stage.POSTPROCESS, Stage.ENCODE)


@dataclass
class ProductResult:
    """A product made from one frame, in memory (and on disk once written).

    Attributes
    ----------
    input_file : str
        Input file name (no folder).
    input_sha256 : str
    site : str
        The station's code (e.g. GONG ``BB``).
    obs_time : str
        ISO UTC observation time of the input frame.
    model_version, model_sha256 : str
    geometry : ModelGeometry
    provenance : dict
        What the FITS header records (``service.science.product.PROVENANCE_KEYS``).
    intensity : dict
        The intensity map's statistics (see ``preprocess.match_intensity``).
    quality_score : float
        The gate's score of the frame.
    fits_bytes, png_bytes : bytes
    gauss : numpy.ndarray
        The magnetogram, float32 Gauss, model-frame row order (FITS: row 0 = south), NaN off disk.
    timings : dict
        Seconds per stage (``STAGES``).
    fits_path, png_path : pathlib.Path or None
        Set by ``process_frame``.
    """

    input_file: str
    input_sha256: str
    site: str
    obs_time: str
    model_version: str
    model_sha256: str
    geometry: ModelGeometry
    provenance: dict[str, Any]
    intensity: dict[str, float]
    quality_score: float
    fits_bytes: bytes
    png_bytes: bytes
    gauss: np.ndarray = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    fits_path: Path | None = None
    png_path: Path | None = None

    @property
    def basename(self) -> str:
        """File stem for this product: input stem + model version."""
        return product_basename(self.input_file, self.model_version)


def product_basename(input_file: str, model_version: str) -> str:
    """``20140319000054Bh.fits.fz`` + ``v3`` -> ``20140319000054Bh_synmag-v3``."""
    stem = Path(input_file).name
    for suffix in (".fz", ".fits", ".fts", ".gz"):
        stem = stem.removesuffix(suffix)
    version = re.sub(r"[^A-Za-z0-9._-]+", "_", model_version)
    return f"{stem}_synmag-{version}"


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = time.perf_counter() - start


def run_frame(
    file: str | Path | bytes,
    model: OnnxGenerator,
    *,
    reader: Reader,
    filename: str | None = None,
    thresholds: Any = None,
) -> ProductResult:
    """Make a product from one frame file, in memory.

    Parameters
    ----------
    file : str, pathlib.Path or bytes
        The frame file (e.g. a GONG ``.fits.fz``) or its content.
    model : OnnxGenerator
        The loaded generator.
    reader : callable
        ``reader(data, name) -> HalphaFrame``: the frame source's reader
        (:meth:`service.sources.base.FrameSource.read`).
    filename : str, optional
        Original file name when ``source`` is bytes (recorded in the product).
    thresholds : optional
        Quality-gate thresholds (``service.science.quality``); default theirs.

    Raises
    ------
    service.errors.FrameRejected
        The frame cannot be read, fails the quality gate (``reason`` = the gate's first
        reason, all of them in ``detail``) or cannot be preprocessed.
    """
    from service.science.quality import gate

    timings: dict[str, float] = {}
    with _timed(timings, Stage.DECODE):
        try:
            raw = Path(file).read_bytes() if isinstance(file, (str, Path)) else bytes(file)
        except OSError as exc:
            raise FrameRejected(Reason.CORRUPT_FITS, f"cannot read {file}: {exc}") from exc
        name = filename or (Path(file).name if isinstance(file, (str, Path)) else None)
        sha256 = hashlib.sha256(raw).hexdigest()
        frame = reader(raw, name)
    with _timed(timings, Stage.GATE):
        verdict = gate(frame, thresholds) if thresholds is not None else gate(frame)
        if not verdict.accepted:
            reasons = list(verdict.reasons) or ["rejected"]
            raise FrameRejected(reasons[0], "quality gate: " + ", ".join(reasons))
    return product_from_frame(
        frame, model, input_file=name or f"sha256-{sha256[:16]}", input_sha256=sha256,
        quality_score=float(getattr(verdict, "score", float("nan"))), timings=timings,
    )


def product_from_frame(
    frame: Any,
    model: OnnxGenerator,
    *,
    input_file: str,
    input_sha256: str,
    quality_score: float = float("nan"),
    timings: dict[str, float] | None = None,
) -> ProductResult:
    """The product of a frame already read and gated: preprocess, infer, render.

    The pipeline calls this with the frame it downloaded, decoded and chose by the
    gate, so nothing is decoded or gated twice; ``run_frame`` calls it after doing both.
    Stage timings are added to ``timings``. The model's output is negated on a frame of
    the other Hale parity than ``model.solar_cycle`` (``service.science.cycles``); the
    provenance records the sign.
    """
    from service.science.cycles import cycle_of, polarity_sign
    from service.science.preprocess import PREPROCESS_VERSION, postprocess, preprocess
    from service.science.product import product_fits_bytes, quicklook_png_bytes

    timings = {} if timings is None else timings
    sha256 = input_sha256
    with _timed(timings, Stage.PREPROCESS):
        model_input = preprocess(frame)
    with _timed(timings, Stage.INFERENCE):
        y = model.predict(model_input.image)
    with _timed(timings, Stage.POSTPROCESS):
        # The model's signs follow the Hale's law it learned; negated in a cycle of the
        # other parity (service.science.cycles). Unknown convention: kept as they are.
        obs_time = model_input.geometry.obs_time
        model_cycle = model.solar_cycle
        sign = 1 if model_cycle is None else polarity_sign(obs_time, model_cycle)
        gauss = postprocess(y * sign, model_input.geometry)
    with _timed(timings, Stage.ENCODE):
        provenance = {
            "input_file": input_file,
            "input_sha256": sha256,
            "site": frame.site,
            "model_version": model.version,
            "model_sha256": model.sha256,
            "preprocess_version": PREPROCESS_VERSION,
            "model_cycle": model_cycle,
            "frame_cycle": cycle_of(obs_time),
            "polarity_sign": sign,
            "software_version": __version__,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        geometry = model_input.geometry
        fits_bytes = product_fits_bytes(gauss, geometry, provenance)
        title = f"synmag {geometry.obs_time.utc.strftime('%Y-%m-%d %H:%M:%S')} UTC  GONG {frame.site}  model {model.version}"
        png_bytes = quicklook_png_bytes(gauss, title=title)
    return ProductResult(
        input_file=input_file,
        input_sha256=sha256,
        site=frame.site,
        obs_time=geometry.obs_time.utc.isot,
        model_version=model.version,
        model_sha256=model.sha256,
        geometry=geometry,
        provenance=provenance,
        intensity=model_input.intensity,
        quality_score=quality_score,
        fits_bytes=fits_bytes,
        png_bytes=png_bytes,
        gauss=gauss,
        timings=timings,
    )


def process_frame(
    file: str | Path | bytes,
    model: OnnxGenerator,
    out_dir: str | Path,
    *,
    reader: Reader,
    filename: str | None = None,
    thresholds: Any = None,
) -> ProductResult:
    """``run_frame`` then write ``<basename>.fits`` and ``<basename>.png`` into ``out_dir``.

    Existing files are never overwritten (``FileExistsError``).
    """
    result = run_frame(file, model, reader=reader, filename=filename, thresholds=thresholds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fits_path = out / f"{result.basename}.fits"
    png_path = out / f"{result.basename}.png"
    for path in (fits_path, png_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwritten")
    with open(fits_path, "xb") as fh:
        fh.write(result.fits_bytes)
    with open(png_path, "xb") as fh:
        fh.write(result.png_bytes)
    result.timings[Stage.WRITE] = time.perf_counter() - start
    result.fits_path, result.png_path = fits_path, png_path
    return result
