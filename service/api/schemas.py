"""Response bodies of the feed API (they make the published OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class PriorInfo(BaseModel):
    """The real magnetogram a nowcast assimilated (FITS ``PRIOROBS``, ``PRIORAGE``, ``PRIORSRC``, ``PRIORSHA``)."""

    obs_time: datetime = Field(description="Observation time of the prior magnetogram (UTC)")
    age_h: float | None = Field(None, description="Its age at the frame's time, hours")
    source: str | None = Field(None, description="Series (hmi.M_720s_nrt) or file it came from")
    sha256: str | None = Field(None, description="sha256 of the prior's file")


KIND = "halpha (H-alpha only) or nowcast (H-alpha and a prior magnetogram); null: made before model kinds"
PRIOR_NOTE = "Why there was no prior (the product is H-alpha only); null for a nowcast"
PRIOR_LINE = 'One line for people: "prior: HMI 23:48 UT, 3.2 h old" or "no prior: H-alpha only"'


class Provenance(BaseModel):
    """Where a product came from: input frame, model, preprocessing, prior."""

    input_file: str | None = Field(None, description="GONG file name of the input frame")
    input_url: str | None = Field(None, description="Where the input frame was downloaded from")
    input_sha256: str | None = None
    input_obs_time: datetime | None = None
    site: str = Field(description="GONG site code (BB CT LE ML TD UD)")
    model_version: str
    model_sha256: str | None = None
    preprocess_version: str
    polarity_sign: int | None = Field(
        None, description="The model's output was multiplied by this: -1 on a frame of the other "
        "solar cycle parity than the model learned (Hale's law reversed); null: not recorded"
    )
    model_kind: str | None = Field(None, description=KIND)
    prior: PriorInfo | None = None
    prior_note: str | None = Field(None, description=PRIOR_NOTE)
    prior_line: str = Field("no prior: H-alpha only", description=PRIOR_LINE)
    created: datetime = Field(description="When the product was committed (UTC)")


class Layers(BaseModel):
    """The product's layers as PNG images on its 1024x1024 grid, solar north at the top.

    ``field``: the magnetogram in the quick-look's colours (RdBu_r, +-200 G), transparent off
    the disk. ``sigma`` (grey level = SIGMA in Gauss, saturating at 255 G) and ``confidence``
    (grey level / 255 = CONFIDENCE, the probability that the sign is right where
    |B| > 20 G), both transparent off the disk: only when the product has them (a model with
    a calibration). Exact values: the FITS product's ``SIGMA`` and ``CONFIDENCE`` HDUs.
    """

    field: str
    sigma: str | None = None
    confidence: str | None = None


class MagnetogramSummary(BaseModel):
    """One synthetic magnetogram, with links to its files."""

    id: int
    obs_time: datetime = Field(description="Observation time of the H-alpha input (UTC)")
    site: str
    model_version: str
    model_kind: str | None = Field(None, description=KIND)
    prior: PriorInfo | None = Field(None, description="The prior magnetogram of a nowcast")
    prior_note: str | None = Field(None, description=PRIOR_NOTE)
    prior_line: str = Field("no prior: H-alpha only", description=PRIOR_LINE)
    created: datetime
    fits_url: str = Field(description="FITS product (Gauss, helioprojective WCS)")
    png_url: str | None = Field(None, description="Quick-look PNG with a colorbar in Gauss")
    input_png_url: str | None = Field(None, description="Quick-look of the model-input H-alpha")
    detail_url: str
    fits_sha256: str
    verified: bool = Field(False, description="Whether verification scores against HMI exist")


class Magnetogram(MagnetogramSummary):
    """A product with its provenance, quality flags and verification scores."""

    provenance: Provenance
    layers: Layers | None = Field(None, description="Links to the field, SIGMA and CONFIDENCE layers as PNG")
    quality: dict[str, Any] | None = Field(None, description="Quality-gate verdict of the input")
    verification: dict[str, Any] | None = Field(None, description="Scores against HMI")
    timings: dict[str, Any] | None = Field(None, description="Seconds per pipeline stage")
    previous_id: int | None = Field(None, description="Product just before in time")
    next_id: int | None = Field(None, description="Product just after in time")


class MagnetogramPage(BaseModel):
    """A page of products in time order; ``next_cursor`` fetches the following page."""

    items: list[MagnetogramSummary]
    count: int
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")
    next_url: str | None = None


class ModelInfo(BaseModel):
    """A registered model version."""

    version: str
    status: str = Field(description="candidate, production, retired or rejected")
    production: bool
    sha256: str
    preprocess_version: str | None = None
    created: datetime
    promoted_at: datetime | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)


class ModelList(BaseModel):
    models: list[ModelInfo]
    production: str | None = Field(None, description="Version serving the feed")
    loaded: str | None = Field(None, description="Version loaded in this process, if any")
    active_providers: list[str] = Field(default_factory=list)


class ModelAction(BaseModel):
    """Result of a promote or rollback."""

    action: str
    production: str | None


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Check]


class Health(BaseModel):
    status: str
    version: str


class ErrorBody(BaseModel):
    detail: str


class RunInfo(BaseModel):
    """The last observation minute the pipeline worked on (any replica), from the database."""

    obs_minute: datetime
    finished_at: datetime | None = None
    outcome: str | None = Field(None, description="product, no_model, no_frames, rejected, retry, failed, ...")
    detail: str | None = Field(None, description="Why, when it made no product")


class FeedStatus(BaseModel):
    """What the feed has and, when it has nothing (new), why: the viewer's empty state."""

    has_products: bool
    latest_obs_time: datetime | None = None
    latest_committed_at: datetime | None = None
    production_model: str | None = Field(None, description="Production H-alpha-only version in the registry (the fallback)")
    production_models: dict[str, str] = Field(default_factory=dict, description="Production version of each model kind")
    pipeline: str | None = Field(
        None, description="This process's pipeline: starting, running, stopping, stopped, failed; "
        "null: an API-only process"
    )
    pipeline_detail: str | None = None
    model_loaded: bool | None = Field(None, description="null: this process runs no pipeline")
    model_version: str | None = None
    active_providers: list[str] = Field(default_factory=list)
    leader: bool | None = Field(None, description="Whether this replica schedules the work")
    last_tick_at: datetime | None = None
    last_tick_error: str | None = None
    last_run: RunInfo | None = None
    reasons: list[str] = Field(
        default_factory=list, description="Why there is no (fresh) product, one line each, most likely first"
    )
