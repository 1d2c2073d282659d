"""Model registry: versions of the ONNX generator, their metrics, a promotion gate.

A version is an ONNX file and its evaluation report in the object store
(``models/<version>/model.onnx``, ``models/<version>/report.json``) plus a
``model_versions`` row: sha256, metrics with baselines, lineage, config,
status (``candidate`` -> ``production`` -> ``retired``; ``rejected`` after a
rollback) and kind (``synmag.kind``: ``halpha`` or ``nowcast``). Exactly one version
of each kind is in production; the service runs the nowcast when it has a prior and
the H-alpha-only model otherwise.

Metrics format
--------------
``register(..., metrics=...)`` takes the validation summary written by
``training.evaluate``::

    {
      "split": "val", "n_days": 130,          # free-form context
      "model":     {"r_bin8": 0.62, "ar_ppa": {"20": 0.74}, "psnr": ..., ...},
      "baselines": {"zero":        {"r_bin8": null, "ar_ppa": {"20": 0.0}, ...},
                    "persistence": {"r_bin8": 0.55, "ar_ppa": {"20": 0.66}, ...}}
    }

Each block holds the keys of ``service.science.metrics.score`` and
``score_regions`` averaged over the val days. A value may be a number or
``{"mean": x, "sd": s, ...}`` (the mean is used); ``ar_ppa`` may also be flat
(``"ar_ppa_20"``). NaN and infinities are stored as ``null`` (JSON, and
PostgreSQL's JSONB, have no NaN).

The gate
--------
:meth:`Registry.gate` passes a version only when, on val:

* it beats both baselines (``zero`` and ``persistence``) on ``r_bin8`` and on
  the active-region PPA at 20 G (``ar_ppa["20"]``). A baseline value of
  ``null`` (e.g. the zero map's undefined correlation) means "no skill": any
  finite model value beats it. A missing model or baseline block fails;
* it does not regress by more than ``tolerance`` (absolute) on either metric
  against the current production version, when there is one;
* its preprocessing version is the service's ``PREPROCESS_VERSION``;
* its uncertainty calibration on val (``metrics["calibration"]``, the figures of
  ``service.science.uncertainty.calibration_scores``) meets
  ``service.science.uncertainty.GATE``: ECE <= 0.05, +-1 sigma coverage 60-76 %,
  AUROC >= 0.70, sigma decile ratio >= 2. A version without them is refused.

For a nowcast the ``model`` block is the nowcast over val days and prior ages and
``baselines.persistence`` is persistence from the same priors (``training.nowcast``);
"production" means the production version of the same kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.engine import make_engine, session_scope
from service.db.models import ModelEvent, ModelVersion
from service.db.types import json_safe, utcnow
from service.errors import FatalError, SynmagError, UsageError
from service.science.metric_table import Metric, gate_metrics
from service.science.uncertainty import passes_gate
from service.storage import ObjectStore, model_key, open_store
from service.vocabulary import ModelKind, ModelStatus

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger(__name__)

BASELINES = ("zero", "persistence")
DEFAULT_TOLERANCE = 0.02
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
METRICS_FILENAMES = ("metrics.json", "report.json")
"""Files beside a bundled ``*.onnx`` read as its metrics (also ``<stem>.metrics.json``)."""


class GateFailed(SynmagError):
    """A promotion refused by the gate; ``reasons`` says why."""

    def __init__(self, version: str, reasons: list[str]) -> None:
        super().__init__(f"{version} does not pass the promotion gate: " + "; ".join(reasons))
        self.version = version
        self.reasons = reasons


@dataclass
class GateResult:
    """Outcome of :meth:`Registry.gate`: ``passed``, human-readable ``reasons`` for a
    failure, and the numbers compared (``checks``)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checks": self.checks}


# --------------------------------------------------------------------------- helpers
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's string metadata props (``synmag.*``)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    except ImportError:  # the service installs onnxruntime, not onnx
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)


def _value(block: Mapping[str, Any] | None, metric: Metric) -> tuple[bool, float | None]:
    """(present, value) of a gate metric in a metrics block; ``None`` for NaN/null."""
    if not isinstance(block, Mapping):
        return False, None
    present = metric.name in block or metric.key.split(".")[0] in block
    return present, metric.read(block) if present else None


def model_to_dict(mv: ModelVersion) -> dict[str, Any]:
    """A version as JSON-ready data (``synmag models --json``, the API)."""

    def iso(t: datetime | None) -> str | None:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None

    return {
        "version": mv.version,
        "sha256": mv.sha256,
        "status": mv.status,
        "kind": mv.kind,
        "created_at": iso(mv.created_at),
        "promoted_at": iso(mv.promoted_at),
        "preprocess_version": mv.preprocess_version,
        "onnx_uri": mv.onnx_uri,
        "report_uri": mv.report_uri,
        "metrics": mv.metrics,
        "lineage": mv.lineage,
        "config": mv.config,
        "gate": mv.gate,
    }


# --------------------------------------------------------------------------- registry
def model_file(spec: str | None) -> Path | None:
    """``spec`` (``--model``, ``SYNMAG_MODEL``) as an ONNX file, or None when it names a version.

    The one rule for "path or version": an existing file is a path; a missing one that looks
    like a path (``.onnx``, a ``/``) is a mistake (``UsageError``); anything else is a version id.
    """
    if spec is None:
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec.endswith(".onnx") or "/" in spec:
        raise UsageError(f"no such model file: {spec}")
    return None


class Registry:
    """Registered model versions in the database and object store of ``settings``.

    Parameters
    ----------
    settings : Settings
        Database, store, model cache and bundled-model locations.
    engine : Engine, optional
        Reuse an engine. Without one, an engine is made and the database is
        migrated (so ``training`` can register into a fresh database).
    store : ObjectStore, optional
        Reuse a store; default ``open_store(settings)``.
    """

    def __init__(
        self, settings: Settings, engine: Engine | None = None, store: ObjectStore | None = None
    ) -> None:
        self.settings = settings
        if engine is None:
            from service.db.migrate import upgrade

            engine = make_engine(settings)
            upgrade(settings, engine)
        self.engine = engine
        self.store = store if store is not None else open_store(settings)

    # ----------------------------------------------------------------- queries
    def list(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        with session_scope(self.engine) as s:
            return list(s.scalars(select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.version)))

    def get(self, version: str) -> ModelVersion | None:
        """One version, or ``None``."""
        with session_scope(self.engine) as s:
            return s.get(ModelVersion, version)

    def production(self, kind: ModelKind = ModelKind.HALPHA) -> ModelVersion | None:
        """The version of ``kind`` in production, or ``None``."""
        with session_scope(self.engine) as s:
            return _production(s, kind)

    def _require(self, s: Session, version: str) -> ModelVersion:
        mv = s.get(ModelVersion, version)
        if mv is None:
            raise UsageError(f"unknown model version {version!r}; known: {self._known(s)}")
        return mv

    @staticmethod
    def _known(s: Session) -> str:
        versions = list(s.scalars(select(ModelVersion.version).order_by(ModelVersion.created_at)))
        return ", ".join(versions) if versions else "(none registered)"

    # ---------------------------------------------------------------- register
    def register(
        self,
        onnx_path: str | Path,
        *,
        metrics: Mapping[str, Any],
        report: Mapping[str, Any] | None,
        lineage: Mapping[str, Any],
        config: Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> ModelVersion:
        """Store an ONNX file (and its report) and record it as a ``candidate``.

        Re-registering a file with the same sha256 returns the existing version
        unchanged. The version id is ``version``, else the file's
        ``synmag.version`` metadata, else ``YYYYMMDD-HHMMSS-<sha8>`` (UTC).
        """
        path = Path(onnx_path)
        if not path.is_file():
            raise UsageError(f"no such ONNX file: {path}")
        sha = file_sha256(path)
        with session_scope(self.engine) as s:
            existing = s.scalars(select(ModelVersion).where(ModelVersion.sha256 == sha)).first()
            if existing is not None:
                log.info("model %s already registered as %s", path, existing.version)
                return existing

        meta = onnx_metadata(path)
        try:
            kind = ModelKind(meta.get("synmag.kind", ModelKind.HALPHA))
        except ValueError:
            raise UsageError(f"{path.name}: unknown synmag.kind {meta['synmag.kind']!r}") from None
        now = utcnow()
        explicit = version is not None
        version = version or meta.get("synmag.version") or f"{now:%Y%m%d-%H%M%S}-{sha[:8]}"
        if not _VERSION_RE.match(version):
            raise UsageError(f"invalid model version id {version!r} (letters, digits, . _ -)")
        if config is None and meta.get("synmag.config"):
            try:
                config = json.loads(meta["synmag.config"])
            except json.JSONDecodeError:
                config = {"raw": meta["synmag.config"]}
            if not isinstance(config, dict):  # e.g. a nowcast's list of seed configs
                config = {"value": config}
        with session_scope(self.engine) as s:
            other = s.get(ModelVersion, version)
            if other is not None and not explicit:
                # Another file carries the same synmag.version metadata: keep both apart.
                log.warning("version %s taken by another file; registering as %s-%s", version, version, sha[:8])
                version = f"{version[:55]}-{sha[:8]}"
                other = s.get(ModelVersion, version)
            if other is not None:
                raise UsageError(
                    f"model version {version!r} exists with another sha256 ({other.sha256[:12]}...)"
                )

        onnx_uri = self.store.put(model_key(version), path.read_bytes(), "application/octet-stream")
        report_uri = None
        if report is not None:
            body = json.dumps(json_safe(report), indent=1, sort_keys=True).encode()
            report_uri = self.store.put(model_key(version, "report.json"), body, "application/json")

        row = ModelVersion(
            version=version,
            sha256=sha,
            onnx_uri=onnx_uri,
            report_uri=report_uri,
            metrics=json_safe(dict(metrics)),
            config=json_safe(dict(config)) if config is not None else None,
            lineage=json_safe(dict(lineage)),
            preprocess_version=meta.get("synmag.preprocess_version"),
            status=ModelStatus.CANDIDATE,
            kind=kind,
            created_at=now,
        )
        try:
            with session_scope(self.engine) as s:
                s.add(row)
                s.flush()
                s.add(ModelEvent(version=version, action="register", detail={"sha256": sha}))
        except IntegrityError:  # a concurrent register of the same file won
            with session_scope(self.engine) as s:
                existing = s.scalars(select(ModelVersion).where(ModelVersion.sha256 == sha)).first()
            if existing is None:
                raise
            return existing
        log.info("registered model %s (sha256 %s)", version, sha[:12])
        return row

    # -------------------------------------------------------------------- gate
    def gate(self, version: str, tolerance: float = DEFAULT_TOLERANCE) -> GateResult:
        """Check ``version`` against the baselines and the production version (module doc).

        The result is also recorded on the version's row (``gate``).
        """
        from service.science.preprocess import PREPROCESS_VERSION

        reasons: list[str] = []
        checks: dict[str, Any] = {"tolerance": tolerance}
        with session_scope(self.engine) as s:
            mv = self._require(s, version)
            prod = _production(s, ModelKind(mv.kind))
            metrics = mv.metrics or {}
            model_block = metrics.get("model")
            baselines = metrics.get("baselines") or {}
            if mv.preprocess_version != PREPROCESS_VERSION:
                reasons.append(
                    f"preprocess_version {mv.preprocess_version!r} != service's {PREPROCESS_VERSION!r}"
                )
            for metric in gate_metrics():
                name, label = metric.name, metric.label
                present, value = _value(model_block, metric)
                entry: dict[str, Any] = {"model": value}
                checks[name] = entry
                if not present or value is None:
                    reasons.append(f"model {name} ({label}) missing or not finite")
                    continue
                for base in BASELINES:
                    b_present, b_value = _value(baselines.get(base), metric)
                    entry[base] = b_value
                    if not b_present:
                        reasons.append(f"baseline {base} {name} missing")
                    elif b_value is not None and not value > b_value:
                        reasons.append(f"{name} {value:.4f} does not beat {base} {b_value:.4f}")
                if prod is not None and prod.version != mv.version:
                    p_present, p_value = _value((prod.metrics or {}).get("model"), metric)
                    entry["production"] = p_value
                    entry["production_version"] = prod.version
                    if p_present and p_value is not None and value < p_value - tolerance:
                        reasons.append(
                            f"{name} {value:.4f} regresses beyond {tolerance} vs production "
                            f"{prod.version} ({p_value:.4f})"
                        )
            calibration = metrics.get("calibration")
            checks["calibration"] = calibration
            if not isinstance(calibration, Mapping):
                reasons.append("no val calibration of its uncertainty (metrics['calibration'])")
            else:
                reasons.extend(f"calibration: {why}" for why in passes_gate(
                    {k: (v if v is not None else float("nan")) for k, v in calibration.items()}))
            result = GateResult(passed=not reasons, reasons=reasons, checks=checks)
            mv.gate = json_safe({**result.as_dict(), "at": utcnow().isoformat()})
        return result

    # ------------------------------------------------------- promote/rollback
    def promote(self, version: str, force: bool = False, tolerance: float = DEFAULT_TOLERANCE) -> ModelVersion:
        """Make ``version`` production (the previous one becomes ``retired``).

        Runs the gate unless ``force``; raises :class:`GateFailed` when it fails.
        Promoting the version already in production is a no-op.
        """
        if not force:
            result = self.gate(version, tolerance)
            if not result.passed:
                raise GateFailed(version, result.reasons)
        with session_scope(self.engine) as s:
            mv = self._require(s, version)
            if mv.status == ModelStatus.PRODUCTION:
                return mv
            self._lock_production(s)
            for old in s.scalars(select(ModelVersion).where(ModelVersion.status == ModelStatus.PRODUCTION,
                                                            ModelVersion.kind == mv.kind)):
                old.status = ModelStatus.RETIRED
            mv.status = ModelStatus.PRODUCTION
            mv.promoted_at = utcnow()
            s.add(ModelEvent(version=version, action="promote", detail={"force": force}))
        log.info("model %s promoted to production%s", version, " (forced)" if force else "")
        return mv

    def _lock_production(self, s: Session) -> None:
        # Serialise promotions across processes: row locks on PostgreSQL; SQLite
        # serialises writers itself (one write transaction at a time).
        if s.get_bind().dialect.name == "postgresql":
            s.execute(select(ModelVersion.version).with_for_update())

    def rollback(self, kind: ModelKind = ModelKind.HALPHA) -> ModelVersion:
        """Put the previous production version of ``kind`` back; the current one becomes ``rejected``."""
        with session_scope(self.engine) as s:
            self._lock_production(s)
            current = _production(s, kind)
            if current is None:
                raise UsageError(f"no production {kind} model version to roll back")
            promoted = s.scalars(
                select(ModelEvent.version)
                .where(ModelEvent.action.in_(("promote", "rollback_to")))
                .order_by(ModelEvent.id.desc())
            )
            previous = None
            for candidate in promoted:
                if candidate == current.version:
                    continue
                mv = s.get(ModelVersion, candidate)
                if mv is not None and mv.status == ModelStatus.RETIRED and mv.kind == current.kind:
                    previous = mv
                    break
            if previous is None:
                raise UsageError(f"no earlier production version to roll back to from {current.version}")
            current.status = ModelStatus.REJECTED
            previous.status = ModelStatus.PRODUCTION
            previous.promoted_at = utcnow()
            s.add(ModelEvent(version=current.version, action="rollback", detail={"to": previous.version}))
            s.add(ModelEvent(version=previous.version, action="rollback_to", detail={"from": current.version}))
        log.info("rolled back from %s to %s", current.version, previous.version)
        return previous

    # ----------------------------------------------------------------- resolve
    def resolve(self, spec: str | None = None, kind: ModelKind = ModelKind.HALPHA) -> Path:
        """A local ONNX file for ``spec``.

        ``None``: ``settings.model`` if set, else the production version of ``kind``
        (registering the bundled models first when there is none). A path to an
        existing file: that file. A version id: its file, downloaded once into
        ``settings.model_cache_dir`` and checked against its sha256.
        """
        if spec is None:
            spec = self.settings.model
        if spec is None:
            path = self.production_file(kind)
            if path is None:
                raise UsageError(
                    f"no production model of kind {kind}: register and promote one (make retrain) or pass --model"
                )
            return path
        path = model_file(spec)
        if path is not None:
            return path
        with session_scope(self.engine) as s:
            mv = s.get(ModelVersion, spec)
            if mv is None:
                raise UsageError(f"unknown model version {spec!r}; known: {self._known(s)}")
        return self._fetch(mv)

    def production_file(self, kind: ModelKind) -> Path | None:
        """The local file of the production version of ``kind`` (bundled ones registered first), or None."""
        self.ensure_bundled()
        prod = self.production(kind)
        return self._fetch(prod) if prod is not None else None

    def _fetch(self, mv: ModelVersion) -> Path:
        target = Path(self.settings.model_cache_dir).expanduser().resolve() / mv.version / "model.onnx"
        if target.is_file() and file_sha256(target) == mv.sha256:
            return target
        data = self.store.get(self.store.key_for(mv.onnx_uri))
        if hashlib.sha256(data).hexdigest() != mv.sha256:
            raise FatalError(f"model {mv.version}: stored file does not match its sha256 {mv.sha256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target

    # ----------------------------------------------------------------- bundled
    def bundled_candidates(self) -> list[Path]:
        """``*.onnx`` files in ``settings.bundled_model_dir`` with a model card or metrics beside them."""
        folder = Path(self.settings.bundled_model_dir)
        if not folder.is_dir():
            return []
        found = []
        for onnx_path in sorted(folder.glob("*.onnx")):
            if (folder / "model_card.md").is_file() or self._bundled_metrics_path(onnx_path):
                found.append(onnx_path)
        return found

    @staticmethod
    def _bundled_metrics_path(onnx_path: Path) -> Path | None:
        names = (f"{onnx_path.stem}.metrics.json", *METRICS_FILENAMES)
        for name in names:
            candidate = onnx_path.with_name(name)
            if candidate.is_file():
                return candidate
        return None

    def ensure_bundled(self) -> list[ModelVersion]:
        """Register and promote the bundled model of each kind that has no production version.

        For each kind (``synmag.kind`` of the file), the last bundled file of that kind is
        promoted when no version of the kind is in production, unless it was rolled back
        (``rejected``). Returns the versions promoted (none when nothing was missing).
        """
        by_kind: dict[ModelKind, Path] = {}
        for onnx_path in self.bundled_candidates():
            kind = ModelKind(onnx_metadata(onnx_path).get("synmag.kind", ModelKind.HALPHA))
            if kind in by_kind:
                log.warning("several bundled %s models; using %s", kind, onnx_path.name)
            by_kind[kind] = onnx_path
        promoted = []
        for kind, onnx_path in by_kind.items():
            if self.production(kind) is None:
                mv = self._promote_bundled(onnx_path)
                if mv is not None:
                    promoted.append(mv)
        return promoted

    def _promote_bundled(self, onnx_path: Path) -> ModelVersion | None:
        sha = file_sha256(onnx_path)
        with session_scope(self.engine) as s:
            known = s.scalars(select(ModelVersion).where(ModelVersion.sha256 == sha)).first()
            if known is not None and known.status == ModelStatus.REJECTED:
                log.warning("bundled model %s was rolled back (rejected); not promoting it", known.version)
                return None
        metrics: dict[str, Any] = {}
        metrics_path = self._bundled_metrics_path(onnx_path)
        if metrics_path is not None:
            metrics = json.loads(metrics_path.read_text())
            if "model" not in metrics and isinstance(metrics.get("metrics"), dict):
                metrics = metrics["metrics"]  # a full report with the summary under "metrics"
        card = onnx_path.with_name("model_card.md")
        lineage = {
            "source": "bundled",
            "file": onnx_path.name,
            "metrics_file": metrics_path.name if metrics_path else None,
            "model_card": card.name if card.is_file() else None,
        }
        mv = self.register(onnx_path, metrics=metrics, report=metrics or None, lineage=lineage)
        return self.promote(mv.version, force=True)


def _production(s: Session, kind: ModelKind | str) -> ModelVersion | None:
    return s.scalars(select(ModelVersion).where(ModelVersion.status == ModelStatus.PRODUCTION,
                                                ModelVersion.kind == str(kind))).first()
