"""Every Prometheus metric synmag exports, declared once.

Seconds are the unit of every duration; counters end in ``_total``. Each label
combination that can occur is initialised by :func:`init_metrics` at start so
that its series exists (at zero) before the first event, which keeps alerting
rules such as ``rate(...) > 0`` and ``absent(...)`` well defined.

Other modules import the metric objects from here and never declare their own.
The API's ``/metrics`` route serves :data:`REGISTRY`.
"""

from __future__ import annotations

import time

from prometheus_client import REGISTRY as _DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.science import metric_table
from service.vocabulary import (
    ModelKind,
    Outcome,
    Reason,
    Reference,
    Stage,
    UpstreamError,
    VerificationOutcome,
)

REGISTRY: CollectorRegistry = _DEFAULT_REGISTRY

# The label values come from the one vocabulary (service.vocabulary); the verification
# metrics from the one metric table (service.science.metric_table).
STAGES = tuple(Stage)
REJECTION_REASONS = tuple(Reason)
UPSTREAM_ERROR_KINDS = tuple(UpstreamError)
RUN_OUTCOMES = tuple(Outcome)
VERIFICATION_REFERENCES = tuple(Reference)
VERIFICATION_OUTCOMES = tuple(VerificationOutcome)
MODEL_KINDS = tuple(ModelKind)
# The live calibration figures of a product's SIGMA/CONFIDENCE layers
# (service.science.uncertainty.calibration_scores), on pixels with |B_true| > 20 G.
CALIBRATION_METRICS = ("ece", "auroc", "coverage", "decile_ratio", "sign_right")

# Histogram buckets: stages run from milliseconds (gate) to tens of seconds
# (a slow upstream download, CPU inference of a 1024x1024 U-Net).
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
_LATENCY_BUCKETS = (15, 30, 45, 60, 90, 120, 180, 240, 300, 600, 1200, 3600, 6 * 3600)

products_total = Counter(
    "synmag_products_total", "Products committed (objects and database row), by model kind", ["kind"]
)
frames_rejected_total = Counter(
    "synmag_frames_rejected_total", "Input frames not turned into a product, by reason", ["reason"]
)
stage_seconds = Histogram(
    "synmag_stage_seconds", "Time spent per frame in each pipeline stage", ["stage"],
    buckets=_STAGE_BUCKETS,
)
end_to_end_latency_seconds = Histogram(
    "synmag_end_to_end_latency_seconds",
    "Observation time (DATE-OBS) to committed product",
    buckets=_LATENCY_BUCKETS,
)
listed_to_product_seconds = Histogram(
    "synmag_listed_to_product_seconds",
    "First listing of a minute's frame to its committed product (the latency goal: p95 <= 30 s)",
    buckets=(2, 5, 10, 15, 20, 25, 30, 45, 60, 90, 120, 300, 600),
)
last_product_timestamp_seconds = Gauge(
    "synmag_last_product_timestamp_seconds", "Observation time of the newest product (Unix seconds)"
)
last_product_commit_timestamp_seconds = Gauge(
    "synmag_last_product_commit_timestamp_seconds", "Wall time the newest product was committed"
)
model_info = Gauge(
    "synmag_model_info", "The model in use (value 1) and the ONNX Runtime provider active",
    ["version", "provider"],
)
model_loaded = Gauge("synmag_model_loaded", "1 when an inference session is loaded")
# What the instance was configured for, so that a CPU session can be told apart
# from a CPU-only deployment (alert SynmagProviderFellBackToCPU) from the start.
gpu_required = Gauge(
    "synmag_gpu_required",
    "1 when this instance should run on a GPU (SYNMAG_REQUIRE_GPU, or a GPU provider asked first)",
)
upstream_errors_total = Counter(
    "synmag_upstream_errors_total", "Failed requests to the GONG archive, by kind", ["kind"]
)
store_errors_total = Counter("synmag_store_errors_total", "Object store operations that failed")
database_errors_total = Counter("synmag_database_errors_total", "Database operations that failed")
runs_total = Counter("synmag_runs_total", "Observation minutes processed, by outcome", ["outcome"])
leader = Gauge("synmag_scheduler_leader", "1 when this replica holds the scheduler lock")
last_tick_timestamp_seconds = Gauge(
    "synmag_last_tick_timestamp_seconds", "Wall time the scheduler last ran a tick"
)
tick_seconds = Histogram(
    "synmag_tick_seconds", "Duration of one scheduler tick", buckets=_STAGE_BUCKETS
)
# The nowcast's prior (service.pipeline.prior): how old the newest product's prior was at
# its frame's time (NaN when the newest product had none: H-alpha only), when a product
# last had one, and whether a prior source is configured at all (the alerts join on it).
prior_age_seconds = Gauge(
    "synmag_prior_age_seconds",
    "Age of the newest product's prior magnetogram at the frame's time; NaN for an H-alpha-only product",
)
last_prior_product_timestamp_seconds = Gauge(
    "synmag_last_prior_product_timestamp_seconds",
    "Observation time of the newest product made with a prior (nowcast), Unix seconds; 0 = none yet",
)
prior_source_configured = Gauge(
    "synmag_prior_source_configured", "1 when a prior source is configured (SYNMAG_PRIOR_SOURCE is not none)"
)
catchup_backlog_minutes = Gauge(
    "synmag_catchup_backlog_minutes", "Observation minutes inside the catch-up window still to do"
)

# Verification (set by service.verification): latest score per metric and
# reference (the model, and the zero and persistence baselines beside it).
verification_score = Gauge(
    "synmag_verification_score", "Latest verification score against HMI",
    ["metric", "reference"],
)
verification_last_timestamp_seconds = Gauge(
    "synmag_verification_last_timestamp_seconds", "Observation time of the latest verified product"
)
calibration_score = Gauge(
    "synmag_calibration_score",
    "Calibration of the latest verified product's SIGMA/CONFIDENCE layers against HMI on pixels "
    "with |B| > 20 G (ece, auroc, coverage within +-1 sigma, decile_ratio, sign_right), by model kind",
    ["metric", "kind"],
)
verification_total = Counter(
    "synmag_verification_total", "Products verified against HMI, by outcome", ["outcome"]
)


_newest_obs_unix = 0.0
_newest_prior_obs_unix = 0.0


def init_metrics() -> None:
    """Create every label combination at zero so the series exist before any event."""
    for reason in REJECTION_REASONS:
        frames_rejected_total.labels(reason=reason)
    for stage in STAGES:
        stage_seconds.labels(stage=stage)
    for kind in UPSTREAM_ERROR_KINDS:
        upstream_errors_total.labels(kind=kind)
    for outcome in RUN_OUTCOMES:
        runs_total.labels(outcome=outcome)
    for outcome in VERIFICATION_OUTCOMES:
        verification_total.labels(outcome=outcome)
    for kind in MODEL_KINDS:
        products_total.labels(kind=kind)
        for metric in CALIBRATION_METRICS:
            calibration_score.labels(metric=metric, kind=kind).set(float("nan"))
    if _newest_obs_unix == 0.0:  # no product yet: no prior to speak of
        prior_age_seconds.set(float("nan"))
    for metric in verification_metrics():
        for reference in VERIFICATION_REFERENCES:
            verification_score.labels(metric=metric, reference=reference).set(float("nan"))


def verification_metrics() -> tuple[str, ...]:
    """Label values of ``synmag_verification_score{metric}``: the metric table's live metrics."""
    return tuple(m.name for m in metric_table.live_metrics())


def reject(reason: str) -> None:
    """Count one rejected frame; unknown reasons are counted as ``other``."""
    frames_rejected_total.labels(reason=Reason.of(reason)).inc()


def observe_stage(stage: str, seconds: float) -> None:
    """Record the duration of one pipeline stage (one of :data:`STAGES`)."""
    stage_seconds.labels(stage=stage).observe(max(0.0, seconds))


def set_model(version: str | None, providers: list[str]) -> None:
    """Export the model in use: one ``synmag_model_info`` series at 1, the old ones removed."""
    model_info.clear()
    if version is None:
        model_loaded.set(0)
        return
    model_info.labels(version=version, provider=providers[0] if providers else "none").set(1)
    model_loaded.set(1)


def set_gpu_required(required: bool) -> None:
    """Export whether the configuration asks for a GPU provider (``synmag_gpu_required``)."""
    gpu_required.set(1 if required else 0)


def product_committed(obs_unix: float, kind: str | None = None, prior_age_h: float | None = None) -> None:
    """Count a committed product and update freshness, end-to-end latency and the prior's age.

    Parameters
    ----------
    obs_unix : float
        The product's observation time (Unix seconds).
    kind : str, optional
        The model kind that made it (``ModelKind``; the product row's ``model_kind``).
        None: ``halpha``, the only kind before nowcasts.
    prior_age_h : float, optional
        Age of its prior at the frame's time (``PRIORAGE``, hours); None: no prior.
    """
    now = time.time()
    products_total.labels(kind=ModelKind(kind) if kind else ModelKind.HALPHA).inc()
    last_product_commit_timestamp_seconds.set(now)
    global _newest_obs_unix, _newest_prior_obs_unix
    if obs_unix >= _newest_obs_unix:  # catch-up fills old minutes: the newest observation wins
        _newest_obs_unix = obs_unix
        last_product_timestamp_seconds.set(obs_unix)
        prior_age_seconds.set(float("nan") if prior_age_h is None else float(prior_age_h) * 3600.0)
    if prior_age_h is not None and obs_unix > _newest_prior_obs_unix:
        _newest_prior_obs_unix = obs_unix
        last_prior_product_timestamp_seconds.set(obs_unix)
    end_to_end_latency_seconds.observe(max(0.0, now - obs_unix))


def set_prior_source(configured: bool) -> None:
    """Export whether a prior source is configured (``synmag_prior_source_configured``)."""
    prior_source_configured.set(1 if configured else 0)


def set_calibration(kind: str, scores: dict[str, float | None]) -> None:
    """Set ``synmag_calibration_score{metric, kind}`` from one product's calibration figures."""
    for metric in CALIBRATION_METRICS:
        value = scores.get(metric)
        calibration_score.labels(metric=metric, kind=ModelKind(kind)).set(
            float("nan") if value is None else float(value))
