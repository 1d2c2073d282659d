"""One H-alpha frame -> one product: decode, gate, preprocess, inference, postprocess, encode.

``run_frame`` does the work in memory and returns the FITS and PNG bytes with their
metadata and per-stage timings; it touches no store and no database, so the CLI
(``synmag process``) and the operational pipeline call the same function.
``process_frame`` is the thin wrapper that writes the two files to a folder.

Which model serves a frame is decided in one place, :meth:`ServingModels.choose`: the
nowcast when there is a prior (and a nowcast model), else the H-alpha-only model, with
the reason recorded. The uncertainty layers (``SIGMA``, ``CONFIDENCE``) come from the
model's calibration (:mod:`service.science.uncertainty`) in the same postprocessing step
for every caller.
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
    from service.science.prior import PriorMap

    PriorFor = Callable[[datetime], tuple[PriorMap | None, str | None]]

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
    sigma, confidence : numpy.ndarray or None
        The uncertainty layers (None for a model without a calibration).
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
    sigma: np.ndarray | None = field(default=None, repr=False)
    confidence: np.ndarray | None = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    fits_path: Path | None = None
    png_path: Path | None = None

    @property
    def basename(self) -> str:
        """File stem for this product: input stem + model version."""
        return product_basename(self.input_file, self.model_version)

    @property
    def model_kind(self) -> str:
        return str(self.provenance["model_kind"])


@dataclass(frozen=True)
class ServingModels:
    """The production model of each kind. The H-alpha-only model serves what the nowcast cannot."""

    halpha: OnnxGenerator | None
    nowcast: OnnxGenerator | None = None

    @classmethod
    def of(cls, model: OnnxGenerator | ServingModels) -> ServingModels:
        """``model`` in its kind's place (a ``ServingModels`` as it is)."""
        from service.vocabulary import ModelKind

        if isinstance(model, ServingModels):
            return model
        return cls(nowcast=model, halpha=None) if model.kind == ModelKind.NOWCAST else cls(halpha=model)

    def choose(self, prior: PriorMap | None, why: str | None) -> tuple[OnnxGenerator, PriorMap | None, str | None]:
        """``(model, prior, note)``: the nowcast with its prior, or the H-alpha-only model and why.

        Raises ``ModelIncompatible`` when the only model there is cannot serve the frame
        (a nowcast without a prior and no H-alpha-only model).
        """
        from service.errors import ModelIncompatible

        if prior is not None and self.nowcast is not None:
            return self.nowcast, prior, None
        if self.halpha is None:
            raise ModelIncompatible(f"no prior ({why}) and no H-alpha-only model to serve the frame without one")
        note = why if prior is None else "no nowcast model in production"
        return self.halpha, None, note

    @property
    def wants_prior(self) -> bool:
        return self.nowcast is not None


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
    model: OnnxGenerator | ServingModels,
    *,
    reader: Reader,
    filename: str | None = None,
    thresholds: Any = None,
    prior_for: PriorFor | None = None,
) -> ProductResult:
    """Make a product from one frame file, in memory.

    Parameters
    ----------
    file : str, pathlib.Path or bytes
        The frame file (e.g. a GONG ``.fits.fz``) or its content.
    model : OnnxGenerator or ServingModels
        The loaded model(s); see :meth:`ServingModels.choose`.
    reader : callable
        ``reader(data, name) -> HalphaFrame``: the frame source's reader
        (:meth:`service.sources.base.FrameSource.read`).
    filename : str, optional
        Original file name when ``source`` is bytes (recorded in the product).
    thresholds : optional
        Quality-gate thresholds (``service.science.quality``); default theirs.
    prior_for : callable, optional
        ``prior_for(obs_time) -> (PriorMap | None, why)``
        (:meth:`service.pipeline.prior.PriorFinder.find`); asked only when there is a
        nowcast model. None: no prior.

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
    models = ServingModels.of(model)
    with _timed(timings, Stage.PREPROCESS):  # the prior is the nowcast's preprocessing
        prior, why = find_prior(models, prior_for, frame.obs_time.utc.to_datetime(timezone=UTC))
    chosen, prior, note = models.choose(prior, why)
    return product_from_frame(
        frame, chosen, prior=prior, prior_note=note, input_file=name or f"sha256-{sha256[:16]}",
        input_sha256=sha256, quality_score=float(getattr(verdict, "score", float("nan"))), timings=timings,
    )


def find_prior(models: ServingModels, prior_for: PriorFor | None, obs_time: datetime) -> tuple[PriorMap | None, str | None]:
    """The frame's prior when a nowcast could use it; else why not."""
    if not models.wants_prior:
        return None, "no nowcast model in production"
    if prior_for is None:
        return None, "no prior source"
    return prior_for(obs_time)


def product_from_frame(
    frame: Any,
    model: OnnxGenerator,
    *,
    prior: PriorMap | None = None,
    prior_note: str | None = None,
    input_file: str,
    input_sha256: str,
    quality_score: float = float("nan"),
    timings: dict[str, float] | None = None,
) -> ProductResult:
    """The product of a frame already read and gated: preprocess, infer, render.

    The pipeline calls this with the frame it downloaded, decoded and chose by the
    gate, so nothing is decoded or gated twice; ``run_frame`` calls it after doing both.
    Stage timings are added to ``timings``. A nowcast (``prior`` required) takes its
    polarity from the prior; an H-alpha-only model's output is negated on a frame of the
    other Hale parity than ``model.solar_cycle`` (``service.science.cycles``). The
    provenance records the sign, the model kind and the prior (or ``prior_note``: why none).
    """
    from service.science.cycles import cycle_of, polarity_sign
    from service.science.preprocess import PREPROCESS_VERSION, postprocess, preprocess
    from service.science.prior import model_inputs
    from service.science.product import product_fits_bytes, quicklook_png_bytes

    timings = {} if timings is None else timings
    sha256 = input_sha256
    with _timed(timings, Stage.PREPROCESS):
        model_input = preprocess(frame)
        obs_time = model_input.geometry.obs_time
        model_cycle = model.solar_cycle
        # Hale's law of the frame's cycle against the one the model (or, in a nowcast, its
        # internal H-alpha-only generator) learned: -1 when they differ, 1 when unknown.
        hale = 1 if model_cycle is None else polarity_sign(obs_time, model_cycle)
        feeds = model_inputs(prior, model_input.image.shape, hale) if model.polarity_from_prior else None
        if feeds is not None and prior is None:
            raise ValueError(f"{model.version} is a nowcast: it needs a prior")
    with _timed(timings, Stage.INFERENCE):
        y, s = model.infer(model_input.image, feeds)
    with _timed(timings, Stage.POSTPROCESS):
        # An H-alpha-only model's signs follow the Hale's law it learned; negated in a cycle
        # of the other parity (service.science.cycles). Unknown convention: kept as they are.
        # A nowcast's output is not negated: its polarity is the prior's, and its internal
        # generator's field was given the frame's Hale sign as an input.
        sign = 1 if model.polarity_from_prior else hale
        gauss = postprocess(y * sign, model_input.geometry)
        sigma = confidence = None
        if model.calibration is not None:
            sigma_raw = postprocess(s, model_input.geometry) if s is not None else np.float32(1.0)
            sigma, confidence = model.calibration.apply(gauss, sigma_raw)
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
            "model_kind": str(model.kind),
            **prior_provenance(prior, prior_note),
            "software_version": __version__,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        geometry = model_input.geometry
        fits_bytes = product_fits_bytes(gauss, geometry, provenance, sigma=sigma, confidence=confidence)
        title = (f"synmag {geometry.obs_time.utc.strftime('%Y-%m-%d %H:%M:%S')} UTC  GONG {frame.site}  "
                 f"model {model.version}  {prior_line(provenance)}")
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
        sigma=sigma,
        confidence=confidence,
        timings=timings,
    )


def prior_provenance(prior: PriorMap | None, note: str | None) -> dict[str, Any]:
    """The product's prior keys (``PRIOROBS``... or ``PRIORWHY``)."""
    if prior is None:
        return {"prior_obs": None, "prior_age_h": None, "prior_source": None, "prior_sha256": None,
                "prior_note": note or "no prior"}
    p = prior.provenance
    return {"prior_obs": p.get("obs_time"), "prior_age_h": round(float(prior.age_h), 3),
            "prior_source": p.get("origin"), "prior_sha256": p.get("sha256"), "prior_note": None}


def prior_line(provenance: dict[str, Any]) -> str:
    """"prior: HMI 23:48 UT, 3.2 h old" or "no prior: H-alpha only" (quick-look title, logs)."""
    if provenance.get("prior_obs"):
        hhmm = str(provenance["prior_obs"])[11:16]
        return f"prior: HMI {hhmm} UT, {float(provenance['prior_age_h']):.1f} h old"
    return "no prior: H-alpha only"


def process_frame(
    file: str | Path | bytes,
    model: OnnxGenerator | ServingModels,
    out_dir: str | Path,
    *,
    reader: Reader,
    filename: str | None = None,
    thresholds: Any = None,
    prior_for: PriorFor | None = None,
) -> ProductResult:
    """``run_frame`` then write ``<basename>.fits`` and ``<basename>.png`` into ``out_dir``.

    Existing files are never overwritten (``FileExistsError``).
    """
    result = run_frame(file, model, reader=reader, filename=filename, thresholds=thresholds, prior_for=prior_for)
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
