"""The service's words, each defined once: outcomes, states, stages, reasons, providers.

Every module that records, counts, labels or checks one of these imports it from here:
the database constraints (``service.db.models``), the Prometheus label sets
(``service.observability``), the pipeline and the API. They are ``StrEnum``s, so a member
*is* its string: it goes into a database column, a JSON document or a metric label as is.
Adding a member here adds it everywhere (a migration is needed where a CHECK constraint
lists the values: ``tests/test_db.py`` says so).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "GPU_PROVIDERS",
    "MinuteStatus",
    "ModelKind",
    "ModelStatus",
    "Outcome",
    "Reason",
    "Reference",
    "RunOutcome",
    "Stage",
    "UpstreamError",
    "VerificationOutcome",
    "check_in",
]


class RunOutcome(StrEnum):
    """How one attempt at one minute ended, as ``runs.outcome`` records it."""

    PRODUCT = "product"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"


class MinuteStatus(StrEnum):
    """Where an observation minute stands (``minute_states.state``)."""

    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"


class Outcome(StrEnum):
    """How the pipeline's work on one minute ended (one log line, ``synmag_runs_total``)."""

    PRODUCT = "product"  # made now
    EXISTS = "exists"  # already there (a rerun, or another writer committed first)
    REPAIRED = "repaired"  # an interrupted run's objects adopted, or lost objects re-made
    NO_FRAMES = "no_frames"
    REJECTED = "rejected"  # every frame refused, for a reason that will not change
    RETRY = "retry"  # a transient failure: tried again later, with backoff
    FAILED = "failed"
    NO_MODEL = "no_model"

    @property
    def run_outcome(self) -> RunOutcome:
        """The database's coarser word for it."""
        return _RUN_OUTCOME[self]

    @property
    def status(self) -> MinuteStatus:
        """The minute's status after this outcome (a retry stays pending)."""
        return _STATUS[self]

    @property
    def made_product(self) -> bool:
        """A product row exists for the minute afterwards."""
        return self in (Outcome.PRODUCT, Outcome.EXISTS, Outcome.REPAIRED)


_RUN_OUTCOME = {
    Outcome.PRODUCT: RunOutcome.PRODUCT, Outcome.EXISTS: RunOutcome.PRODUCT,
    Outcome.REPAIRED: RunOutcome.PRODUCT, Outcome.NO_FRAMES: RunOutcome.SKIPPED,
    Outcome.NO_MODEL: RunOutcome.SKIPPED, Outcome.REJECTED: RunOutcome.REJECTED,
    Outcome.RETRY: RunOutcome.FAILED, Outcome.FAILED: RunOutcome.FAILED,
}
_STATUS = {
    Outcome.PRODUCT: MinuteStatus.DONE, Outcome.EXISTS: MinuteStatus.DONE,
    Outcome.REPAIRED: MinuteStatus.DONE, Outcome.NO_FRAMES: MinuteStatus.SKIPPED,
    Outcome.NO_MODEL: MinuteStatus.SKIPPED, Outcome.REJECTED: MinuteStatus.REJECTED,
    Outcome.RETRY: MinuteStatus.PENDING, Outcome.FAILED: MinuteStatus.FAILED,
}


class Stage(StrEnum):
    """Steps a frame goes through, in order: timings, rejections and ``synmag_stage_seconds``."""

    DOWNLOAD = "download"
    DECODE = "decode"
    GATE = "gate"
    SELECT = "select"
    PREPROCESS = "preprocess"
    INFERENCE = "inference"
    POSTPROCESS = "postprocess"
    ENCODE = "encode"
    WRITE = "write"


class Reason(StrEnum):
    """Why a frame did not become a product; ``.stage`` is where that is decided."""

    # the frame reader (service.sources.*.reader)
    CORRUPT_FITS = "corrupt_fits"
    TRUNCATED = "truncated"
    WRONG_SHAPE = "wrong_shape"
    MISSING_KEYS = "missing_keys"
    ABSURD_HEADER = "absurd_header"
    # the quality gate (service.science.quality)
    ECLIPSE = "eclipse"
    FILTER_ERROR = "filter_error"
    LOW_SHARPNESS = "low_sharpness"
    BRIGHT_SKY = "bright_sky"
    BAD_LIMB_FIT = "bad_limb_fit"
    NAN_PIXELS = "nan_pixels"
    SATURATED_PIXELS = "saturated_pixels"
    # the forward transform (service.science.preprocess)
    FLAT_DISK = "flat_disk"
    # the pipeline
    NOT_SELECTED = "not_selected"
    DOWNLOAD_FAILED = "download_failed"
    NOT_FOUND = "not_found"
    SIZE_MISMATCH = "size_mismatch"
    NAN_OUTPUT = "nan_output"
    NO_PRIOR = "no_prior"  # a nowcast version's backfill: the frame has no usable prior
    PROCESSING_FAILED = "processing_failed"
    OTHER = "other"

    @property
    def stage(self) -> Stage:
        return _REASON_STAGE.get(self, Stage.GATE)

    @classmethod
    def of(cls, text: str) -> Reason:
        """The member named ``text``, or :attr:`OTHER` for a word this vocabulary lacks."""
        try:
            return cls(text)
        except ValueError:
            return cls.OTHER


_REASON_STAGE = {
    Reason.DOWNLOAD_FAILED: Stage.DOWNLOAD, Reason.NOT_FOUND: Stage.DOWNLOAD,
    Reason.SIZE_MISMATCH: Stage.DOWNLOAD, Reason.CORRUPT_FITS: Stage.DECODE,
    Reason.TRUNCATED: Stage.DECODE, Reason.WRONG_SHAPE: Stage.DECODE,
    Reason.MISSING_KEYS: Stage.DECODE, Reason.ABSURD_HEADER: Stage.DECODE,
    Reason.NOT_SELECTED: Stage.SELECT, Reason.NAN_OUTPUT: Stage.INFERENCE,
    Reason.FLAT_DISK: Stage.PREPROCESS, Reason.NO_PRIOR: Stage.PREPROCESS,
}


class UpstreamError(StrEnum):
    """Kinds of failed requests to an upstream archive (``synmag_upstream_errors_total``)."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_5XX = "http_5xx"
    HTTP_4XX = "http_4xx"
    NOT_FOUND = "not_found"
    TRUNCATED = "truncated"


class VerificationOutcome(StrEnum):
    SCORED = "scored"
    NO_TRUTH = "no_truth"
    FAILED = "failed"


class Reference(StrEnum):
    """What a verification score is of: the product, or a baseline scored beside it."""

    MODEL = "model"
    ZERO = "zero"
    PERSISTENCE = "persistence"


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    PRODUCTION = "production"
    RETIRED = "retired"
    REJECTED = "rejected"


class ModelKind(StrEnum):
    """What a model takes: the H-alpha frame alone, or the frame and a prior magnetogram."""

    HALPHA = "halpha"
    NOWCAST = "nowcast"


# ONNX Runtime execution providers that run on a GPU, best first.
GPU_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider",
)


def check_in(column: str, values: type[StrEnum]) -> str:
    """SQL ``CHECK`` text allowing exactly the members of ``values`` in ``column``."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"
