"""Database tables (SQLAlchemy 2 declarative, typed).

One row per input frame downloaded, per rejection (with a machine-readable
reason), per product, per registered model version and per pipeline run. A
product is unique per (input frame, model version) and per (observation
minute, model version): the feed has at most one product a minute per model.
Every datetime is timezone-aware UTC (see :class:`~service.db.types.UTCDateTime`).

The schema is owned by Alembic (``migrations/``); after changing a model, add
a migration (``tests/test_db.py`` fails while they differ).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from service.db.types import JSONDoc, UTCDateTime, utcnow
from service.vocabulary import MinuteStatus, ModelKind, ModelStatus, RunOutcome, check_in

# Named constraints, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Frame sources and stations are named by strings of these lengths (service.sources).
SOURCE_LEN = 32
SITE_LEN = 16


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDoc}


class InputFrame(Base):
    """A frame that was downloaded (accepted by the quality gate or not), unique per source and name."""

    __tablename__ = "input_frames"
    __table_args__ = (UniqueConstraint("source", "filename"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LEN))
    filename: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    site: Mapped[str] = mapped_column(String(SITE_LEN))
    obs_time: Mapped[datetime]
    obs_minute: Mapped[datetime] = mapped_column(index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    raw_uri: Mapped[str | None] = mapped_column(Text)
    header_generation: Mapped[str | None] = mapped_column(String(16))
    quality: Mapped[dict[str, Any] | None]
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    products: Mapped[list[Product]] = relationship(back_populates="input_frame")


class Rejection(Base):
    """Why a frame (or a minute) produced nothing: stage and machine-readable reason."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str | None] = mapped_column(String(SOURCE_LEN))
    filename: Mapped[str | None] = mapped_column(String(64), index=True)
    url: Mapped[str | None] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(String(SITE_LEN))
    obs_time: Mapped[datetime | None]
    obs_minute: Mapped[datetime | None] = mapped_column(index=True)
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A registered ONNX generator: files in the object store, metrics, lineage, status."""

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(check_in("status", ModelStatus), name="status"),
        CheckConstraint(check_in("kind", ModelKind), name="kind"),
    )

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    # What the model takes (service.vocabulary.ModelKind); one production version per kind.
    kind: Mapped[str] = mapped_column(String(16), default=ModelKind.HALPHA, server_default="halpha", index=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    onnx_uri: Mapped[str] = mapped_column(Text)
    report_uri: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any] | None]
    lineage: Mapped[dict[str, Any]]
    preprocess_version: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ModelStatus.CANDIDATE, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    gate: Mapped[dict[str, Any] | None]


class ModelEvent(Base):
    """Audit log of registry actions (register, promote, rollback, reject)."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Product(Base):
    """A synthetic magnetogram (FITS + PNG in the object store) and its provenance."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("input_frame_id", "model_version"),
        UniqueConstraint("obs_minute", "model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    input_frame_id: Mapped[int] = mapped_column(ForeignKey("input_frames.id"))
    obs_time: Mapped[datetime] = mapped_column(index=True)
    obs_minute: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LEN))
    site: Mapped[str] = mapped_column(String(SITE_LEN))
    model_version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    preprocess_version: Mapped[str] = mapped_column(String(16))
    # The model output x this is the product (service.science.cycles): -1 on frames of the
    # other Hale parity than the model learned; NULL: made before the rule, never negated.
    polarity_sign: Mapped[int | None] = mapped_column(SmallInteger)
    # Which kind of model served the minute and, for a nowcast, from what prior; for an
    # H-alpha-only product ``prior_note`` says why there was no prior. NULL: before 0004.
    model_kind: Mapped[str | None] = mapped_column(String(16))
    prior_obs: Mapped[datetime | None]
    prior_age_h: Mapped[float | None] = mapped_column(Float)
    prior_source: Mapped[str | None] = mapped_column(Text)
    prior_sha256: Mapped[str | None] = mapped_column(String(64))
    prior_note: Mapped[str | None] = mapped_column(Text)
    fits_uri: Mapped[str] = mapped_column(Text)
    png_uri: Mapped[str | None] = mapped_column(Text)
    fits_sha256: Mapped[str] = mapped_column(String(64))
    png_sha256: Mapped[str | None] = mapped_column(String(64))
    quality: Mapped[dict[str, Any] | None]
    verification: Mapped[dict[str, Any] | None]
    timings: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    input_frame: Mapped[InputFrame] = relationship(back_populates="products")


class Run(Base):
    """One attempt at one observation minute, and how it ended."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"outcome IS NULL OR {check_in('outcome', RunOutcome)}", name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    obs_minute: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)


class MinuteState(Base):
    """Where each observation minute stands, for catch-up after downtime.

    ``state`` is ``pending`` until the minute has a final outcome; ``attempts``
    and ``next_attempt_at`` carry the retry backoff across restarts.
    """

    __tablename__ = "minute_states"
    __table_args__ = (
        CheckConstraint(check_in("state", MinuteStatus), name="state"),
    )

    obs_minute: Mapped[datetime] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=MinuteStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
