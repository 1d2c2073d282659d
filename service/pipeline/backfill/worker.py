"""A backfill worker: the model and pipeline loaded once, then partitions of minutes.

:class:`BackfillPlugin` is registered with the scheduler and set up on every worker, also on
one that joins or is restarted later. Its ``setup`` only places the worker (the CPUs and the
GPU it may use); the pipeline (database pool, object store, frame sources, ONNX session) is
opened by the first task, in the worker's task thread, because loading a model (minutes for a
TensorRT engine) would block the worker's event loop and miss its heartbeats.

Placement on one machine (``synmag reprocess --cluster local``, whose workers are named
0..N-1): each worker gets its share of the CPUs (``os.sched_setaffinity``; ONNX Runtime sizes
its thread pool from the affinity, so N workers do not run N pools of every CPU against each
other), and, when a GPU provider is asked for and the machine has several GPUs, one GPU
(``CUDA_VISIBLE_DEVICES`` set before CUDA starts in that process: one ONNX session per GPU).
Workers of a remote cluster are placed by whoever starts them (``dask worker`` per GPU with
``CUDA_VISIBLE_DEVICES``, ``dask cuda worker``, SLURM's ``--gpus-per-task``): see deploy/dask/.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
import time
from typing import Any

from distributed import WorkerPlugin, get_worker

from service.errors import FatalError
from service.pipeline.backfill.plan import Partition
from service.pipeline.backfill.summary import PartitionSummary
from service.pipeline.minute import MinuteOutcome
from service.settings import Settings
from service.vocabulary import GPU_PROVIDERS, Outcome

log = logging.getLogger(__name__)

__all__ = ["BackfillPlugin", "plugin_name", "run_partition", "warm_up"]


def plugin_name(settings: Settings, version: str) -> str:
    """The plugin's name: one per (settings, model version), so a rerun on a live cluster reuses it."""
    digest = hashlib.sha256(f"{settings.model_dump_json()}\n{version}".encode()).hexdigest()
    return f"synmag-backfill-{version}-{digest[:12]}"


class BackfillPlugin(WorkerPlugin):
    """Opens the pipeline with model ``version`` on a worker, once; closes it at teardown.

    Parameters
    ----------
    settings : Settings
        The client's settings (database, store, providers...); ``model`` is replaced by
        ``version`` so every worker loads the version the client resolved.
    version : str
        Registry version id of the model.
    local_workers : int, optional
        Number of workers of a local cluster on this machine, for placement; None for a
        remote cluster (placed by whoever started its workers).
    """

    # Registered again (a rerun on a live cluster, or after warm_workers), a plugin of the same
    # name (same settings and version) is kept with its loaded model rather than set up anew.
    idempotent = True

    def __init__(self, settings: Settings, version: str, local_workers: int | None = None) -> None:
        self.settings = settings.model_copy(update={"model": version})
        self.version = version
        self.local_workers = local_workers
        self.name = plugin_name(settings, version)
        self._lock = threading.Lock()
        self._pipeline: Any = None
        self._error: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_pipeline")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._pipeline = threading.Lock(), None

    def setup(self, worker: Any) -> None:
        if self.local_workers is not None and isinstance(worker.name, int):
            place_local_worker(worker.name, self.local_workers, self.settings.providers)

    def teardown(self, worker: Any) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    def context(self) -> tuple[Any, Any]:
        """``(PipelineContext, LoadedModel)``, opened on first use; a failure is kept and raised again."""
        with self._lock:
            if self._pipeline is None and self._error is None:
                self._open()
            if self._error is not None:
                raise FatalError(self._error)
            return self._pipeline.ctx, self._pipeline.runtime.current

    def _open(self) -> None:
        from service.pipeline.wiring import open_pipeline

        try:
            pipeline = open_pipeline(self.settings)
        except Exception as exc:  # every task of this worker fails with the same reason, at once
            self._error = f"worker could not open the pipeline: {type(exc).__name__}: {exc}"
            return
        model = pipeline.runtime.current
        if model is None or model.version != self.version:
            pipeline.close()
            self._error = f"worker could not load model {self.version}"
            return
        log.info("backfill worker ready: model %s on %s", model.version, ", ".join(model.providers))
        self._pipeline = pipeline


def warm_up(plugin: str) -> list[str]:
    """A task for one worker: open its pipeline now; returns the ONNX Runtime providers active there."""
    _, model = get_worker().plugins[plugin].context()
    return list(model.providers)


def run_partition(plugin: str, partition: Partition) -> PartitionSummary:
    """The task: reprocess every minute of ``partition`` with the worker's model; counts, not products.

    Each minute is :func:`~service.pipeline.reprocess.reprocess_minute` (the feed's product
    path and keys). An exception in one minute fails that minute, with its reason, and the
    partition goes on; a worker whose pipeline cannot open fails the task.
    """
    from service.pipeline.reprocess import reprocess_minute

    worker = get_worker()
    ctx, model = worker.plugins[plugin].context()
    summary = PartitionSummary(partition.start, worker=str(worker.name))
    t0 = time.perf_counter()
    for minute, frame_id in partition.items:
        try:
            out = reprocess_minute(ctx, minute, frame_id, model)
        except Exception as exc:  # a bug or an outage in one minute: reported, the rerun retries it
            log.exception("minute %s failed", minute)
            out = MinuteOutcome(minute, Outcome.FAILED, model_version=model.version,
                                detail=f"{type(exc).__name__}: {exc}")
        summary.add(out)
    summary.seconds = time.perf_counter() - t0
    return summary


def place_local_worker(index: int, workers: int, providers: list[str]) -> None:
    """Worker ``index`` of ``workers`` on this machine: its share of the CPUs, and one GPU if asked."""
    cpus = sorted(os.sched_getaffinity(0))
    share = len(cpus) // workers
    if workers > 1 and share >= 1:
        os.sched_setaffinity(0, cpus[(index % workers) * share:(index % workers + 1) * share])
    if any(p in GPU_PROVIDERS for p in providers):
        devices = visible_gpus()
        if len(devices) > 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[index % len(devices)]
            log.info("backfill worker %d: GPU %s", index, os.environ["CUDA_VISIBLE_DEVICES"])


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi``'s list."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]
