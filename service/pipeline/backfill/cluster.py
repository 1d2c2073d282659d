"""The client side of a backfill: a cluster to run on, the partitions submitted, the results added up.

``--cluster`` names where: ``local`` (an embedded ``LocalCluster`` of worker processes, one
thread each, on this machine), a scheduler address (``tcp://HOST:8786``, any protocol Dask
speaks) or a scheduler file (``scheduler.json``, as ``dask scheduler --scheduler-file``
writes it on a shared file system: the HPC way). Workers of a remote cluster need the
synmag package, network access to the database and the object store, and the object
store's credentials in their environment (``AWS_*``); the settings themselves travel with
the worker plugin (see deploy/dask/).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client, Future, LocalCluster

from service.errors import UsageError
from service.pipeline.backfill.plan import Partition
from service.pipeline.backfill.summary import BackfillSummary
from service.pipeline.backfill.worker import BackfillPlugin, run_partition
from service.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["BackfillRun", "default_local_workers", "open_client", "submit_backfill", "warm_workers"]

# A partition's task is tried again this many times when it raises (a worker that dies is
# handled by the scheduler: distributed.scheduler.allowed-failures, 3 by default).
TASK_RETRIES = 1


def default_local_workers(settings: Settings) -> int:
    """Local workers by default: one per GPU when a GPU provider is asked and there are GPUs,
    else one per two CPUs (each worker's ONNX session uses the CPUs of its share)."""
    from service.pipeline.backfill.worker import visible_gpus
    from service.vocabulary import GPU_PROVIDERS

    if any(p in GPU_PROVIDERS for p in settings.providers):
        gpus = visible_gpus()
        if gpus:
            return len(gpus)
    return max(1, len(os.sched_getaffinity(0)) // 2)


@contextlib.contextmanager
def open_client(cluster: str, workers: int | None = None, *, dashboard: str | None = ":8787") -> Iterator[Client]:
    """A ``Client`` on ``cluster`` (``local``, an address or a scheduler file); the local cluster closed after.

    ``workers`` is the local cluster's size (ignored, with a warning, for a remote one).
    ``dashboard`` is the local scheduler's dashboard address (None: none).
    """
    if cluster == "local":
        with warnings.catch_warnings():  # 8787 taken: Dask says so and serves the dashboard elsewhere
            warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
            local = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                                 dashboard_address=dashboard)
        with local, Client(local) as client:
            yield client
        return
    if workers is not None:
        log.warning("--workers applies to --cluster local only: the remote cluster has the workers it has")
    if "://" in cluster:
        with Client(cluster, timeout="30s") as client:
            yield client
        return
    path = Path(cluster)
    if path.suffix == ".json" and path.is_file():
        with Client(scheduler_file=str(path), timeout="30s") as client:
            yield client
        return
    raise UsageError(f"--cluster: 'local', 'none', a scheduler address (tcp://HOST:8786) or a scheduler "
                     f"file (scheduler.json): {cluster!r}")


@dataclass
class BackfillRun:
    """The partitions of a backfill, submitted: one future each."""

    client: Client
    version: str
    partitions: list[Partition]
    futures: list[Future]
    started: float = field(default_factory=time.perf_counter)

    def collect(self, on_done: Callable[[int, int], None] | None = None) -> BackfillSummary:
        """Add up the partitions' summaries as they finish (a failed task fails its minutes).

        Each result is fetched when its task finishes: a worker that dies later loses results
        the scheduler then computes again (finding the minutes made), but this summary keeps
        the first. ``on_done(k, n)`` is called after each of the ``n`` partitions.
        """
        from distributed import as_completed

        partition_of = {f.key: p for p, f in zip(self.partitions, self.futures, strict=True)}
        summary = BackfillSummary(self.version)
        for k, future in enumerate(as_completed(self.futures), start=1):
            partition = partition_of[future.key]
            if future.status == "finished":
                summary.add(future.result())
            else:
                exc = future.exception()
                summary.add_failed_task(partition.start, len(partition), f"{type(exc).__name__}: {exc}")
            if on_done is not None:
                on_done(k, len(self.futures))
        return summary

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def warm_workers(
    client: Client, settings: Settings, version: str, local_workers: int | None = None
) -> tuple[dict[str, str], list[str]]:
    """Register the worker plugin and load the model on every worker now.

    Returns ``{worker name: its ONNX providers, or why it failed}`` and the names of those
    that failed. A worker that cannot open its pipeline is retired, so that it does not fail
    partition after partition; workers that join later load the model with their first one.
    """
    from service.pipeline.backfill.worker import warm_up

    plugin = BackfillPlugin(settings, version, local_workers=local_workers)
    client.register_plugin(plugin)
    names = worker_names(client)
    futures = {addr: client.submit(warm_up, plugin.name, workers=[addr], allow_other_workers=False, pure=False)
               for addr in names}
    said, broken = {}, []
    for addr, future in futures.items():
        name = names[addr]
        try:
            said[name] = ", ".join(future.result())
        except Exception as exc:  # the plugin's reason (database, store, model, GPU)
            said[name] = f"{type(exc).__name__}: {exc}"
            broken.append(addr)
    if broken:
        client.retire_workers(broken, close_workers=True, remove=True)
    return said, [names[addr] for addr in broken]


def worker_names(client: Client) -> dict[str, str]:
    """``{address: name}`` of every worker now connected."""
    return {addr: str(name) for addr, name in client.run(lambda dask_worker: dask_worker.name).items()}


def submit_backfill(
    client: Client, settings: Settings, version: str, partitions: list[Partition],
    local_workers: int | None = None,
) -> BackfillRun:
    """Register the worker plugin for ``version`` and submit one task per partition, oldest first."""
    from dask.base import tokenize

    plugin = BackfillPlugin(settings, version, local_workers=local_workers)
    client.register_plugin(plugin)
    futures = [
        client.submit(run_partition, plugin.name, p, retries=TASK_RETRIES,
                      key=f"synmag-reprocess-{version}-{p.start:%Y%m%dT%H%M}-{tokenize(plugin.name, p)[:10]}")
        for p in partitions
    ]
    return BackfillRun(client, version, partitions, futures)
