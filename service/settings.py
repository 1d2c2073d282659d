"""One typed settings object, read from ``SYNMAG_*`` environment variables.

Validated once at start (``get_settings()``); every other module receives a
``Settings`` instance instead of reading the environment itself. An optional
``.env``-style file named by ``SYNMAG_ENV_FILE`` is read too; variables win.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

VAR_DIR = Path("var")

# ONNX Runtime provider names accepted in SYNMAG_PROVIDERS, short or long form.
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class Settings(BaseSettings):
    """Configuration of every synmag process (service, CLI, training registry)."""

    model_config = SettingsConfigDict(env_prefix="SYNMAG_", extra="ignore")

    # --- storage -----------------------------------------------------------
    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR}/synmag.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    store_url: str = Field(
        default="file://var/store",
        description="Object store: file://DIR (relative or absolute) or s3://bucket/prefix",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (SeaweedFS, MinIO...)")
    s3_region: str = "us-east-1"

    # --- upstream ----------------------------------------------------------
    # NoDecode: SYNMAG_FRAME_SOURCES is "gong" or "gong,other" (split below), not JSON.
    frame_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gong"],
        description="Registered frame sources (service.sources) the feed lists, in order",
    )
    gong_base_url: str = Field(default="https://gong2.nso.edu", description="NSO GONG archive root")
    http_timeout_s: float = Field(default=30.0, gt=0, description="limit on one whole HTTP request (not per read)")
    http_retries: int = Field(default=4, ge=0, le=20)
    http_backoff_base_s: float = Field(default=1.0, ge=0)
    http_backoff_cap_s: float = Field(default=20.0, ge=0)

    # --- model and inference -----------------------------------------------
    model: str | None = Field(
        default=None, description="Registry version or ONNX path; default: the production version"
    )
    # NoDecode: SYNMAG_PROVIDERS is "cuda,cpu" (split by the validator below), not JSON.
    providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    require_gpu: bool = Field(default=False, description="Refuse to start when no GPU provider is active")
    bundled_model_dir: Path = Field(default=Path(__file__).resolve().parent.parent / "models")
    model_cache_dir: Path = Field(
        default=VAR_DIR / "models", description="Where registry versions are downloaded to run"
    )
    model_solar_cycle: int = Field(
        default=24, ge=1,
        description="Solar cycle whose Hale polarity a model learned, when its metadata does not say "
        "(synmag.solar_cycle); every model trained on the Ha2Mag data learned cycle 24",
    )
    trt_cache_dir: Path = Field(
        default=VAR_DIR / "trt-cache",
        description="TensorRT engine and timing caches (with the tensorrt provider): a restart reuses the engine",
    )

    # --- scheduling --------------------------------------------------------
    tick_seconds: int = Field(
        default=10, ge=1,
        description="Scheduler period: how often the sources are listed (one listing per source a poll; "
        "a listing that did not change costs a 304 where the server supports conditional requests)",
    )
    catchup_hours: float = Field(default=6.0, ge=0, description="How far back missed minutes are filled")
    misfire_grace_s: int = Field(default=30, ge=1)
    minutes_per_tick: int = Field(default=5, ge=1, description="Most observation minutes processed per tick")
    minute_settle_s: float = Field(
        default=10.0, ge=0,
        description="Seconds after a minute's first frame is listed before the minute is processed "
        "(other sites' frames of the minute listed by then compete for it)",
    )

    # --- quality gate thresholds (see service.science.quality) -------------
    # Lenient defaults: the sunpy sample frame (a good one) has SHARPNSS 0.0084, sky/disk 0.06.
    gate_min_sharpness: float = Field(default=0.001, ge=0, description="Minimum SHARPNSS (0..1)")
    gate_max_sky_brightness: float = Field(
        default=0.3, gt=0, description="Maximum SKYBRITE / on-disk median counts"
    )
    gate_min_limb_points: int = Field(default=1, ge=0, description="Minimum LIMBPTCT")
    gate_max_limb_ellipticity: float = Field(
        default=0.03, ge=0, description="Maximum 1 - FNDLMBMI / FNDLMBMA"
    )
    gate_max_saturated_fraction: float = Field(default=0.01, ge=0, le=1)
    gate_saturation_counts: float = Field(default=4095, description="Counts at which a pixel is saturated")

    # --- API and monitoring -----------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    admin_token: str | None = Field(default=None, description="Bearer token for admin routes; unset = admin off")
    public_url: str | None = Field(
        default=None, description="Base URL of the links the API hands out; unset: relative links (never the Host header)"
    )
    stale_after_s: float = Field(default=300.0, gt=0, description="Feed older than this is not ready")
    truth_source: str = Field(
        default="none",
        description="Magnetogram source products are verified against: none, or a registered one "
        "(jsoc, dir, replay; service.sources)",
    )
    verify_every_s: int = Field(default=30, ge=1, description="Period of the verification job")
    truth_dir: Path | None = Field(default=None, description="Folder of the 'dir' truth source")
    truth_url: str | None = Field(
        default=None, description="Root URL of the 'replay' truth source (the replay archive)"
    )
    jsoc_url: str = Field(
        default="http://jsoc.stanford.edu",
        description="JSOC root of the 'jsoc' magnetogram source (drms CGIs under /cgi-bin/ajax/); "
        "a stand-in's URL for drills (synmag jsoc-standin)",
    )
    # --- the nowcast's prior ---------------------------------------------------
    prior_source: str = Field(
        default="none",
        description="Magnetogram source of the nowcast's prior: none (H-alpha-only products), or a "
        "registered one (jsoc, dir, replay); its folder/URL: SYNMAG_PRIOR_DIR / SYNMAG_PRIOR_URL, "
        "else the truth source's",
    )
    prior_dir: Path | None = Field(default=None, description="Folder of the 'dir' prior source")
    prior_url: str | None = Field(default=None, description="Root URL of the 'replay' prior source")
    prior_min_age_h: float = Field(
        default=0.0, ge=0, description="Youngest prior used: observed at least this many hours before the frame "
        "(raise it to drill an HMI outage)")
    prior_max_age_h: float = Field(
        default=168.0, gt=0, le=24 * 28,
        description="Oldest prior used; older -> the H-alpha-only model serves the minute")
    jsoc_timeout_s: float = Field(
        default=120.0, gt=0, description="limit on one JSOC segment download (a 4096x4096 image is ~10 MB)"
    )

    # --- logging -----------------------------------------------------------
    log_level: str = "INFO"

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().startswith("["):
            value = json.loads(value)  # a JSON list is accepted too
        elif isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list):
            return [PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in value]
        return value

    @field_validator("frame_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list) and not value:
            raise ValueError("SYNMAG_FRAME_SOURCES must name at least one frame source")
        return value

    @field_validator("jsoc_url", "truth_url", "prior_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/") if value else value

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str) -> str:
        if not (value.startswith("file://") or value.startswith("s3://")):
            raise ValueError(f"SYNMAG_STORE_URL must start with file:// or s3://, got {value!r}")
        if value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("SYNMAG_STORE_URL s3:// needs a bucket name")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not (value.startswith("sqlite") or value.startswith("postgresql")):
            raise ValueError(f"SYNMAG_DATABASE_URL must be sqlite or postgresql, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        if self.http_backoff_cap_s < self.http_backoff_base_s:
            raise ValueError("SYNMAG_HTTP_BACKOFF_CAP_S must be >= SYNMAG_HTTP_BACKOFF_BASE_S")
        if self.prior_max_age_h < self.prior_min_age_h:
            raise ValueError("SYNMAG_PRIOR_MAX_AGE_H must be >= SYNMAG_PRIOR_MIN_AGE_H")
        return self

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings from the environment (and ``SYNMAG_ENV_FILE``)."""
    env_file = os.environ.get("SYNMAG_ENV_FILE")
    if env_file:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    return Settings(**overrides)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return load_settings()
