"""``synmag reprocess --start T --end T [--model VERSION] [--cluster local|none|ADDRESS] [--workers N] [--partition 1h]``.

Backfill past minutes with a model version: for every minute in ``[start, end)`` that has
a product, adds the product of ``--model`` (default: the production version) made from the
same archived input frame (:mod:`service.pipeline.reprocess`). Existing products are never
replaced; run it again and it adds nothing.

By default the minutes run on an embedded Dask ``LocalCluster`` (``--workers`` processes);
``--cluster tcp://HOST:8786`` (or a scheduler file) runs them on any Dask cluster
(:mod:`service.pipeline.backfill`), ``--cluster none`` in this process, one JSON line a
minute (debugging). Prints the dashboard's address, Dask's progress bar, then one JSON line
per minute without a product (failed or rejected, with why) and the count of outcomes.
Exit status 1 if any minute failed (its archived input missing or damaged).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from service.commands.products import parse_time
from service.errors import UsageError

if TYPE_CHECKING:
    from service.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, metavar="T", help="first observation minute (ISO 8601, UTC)")
    parser.add_argument("--end", required=True, metavar="T", help="end of the range, not included (ISO 8601, UTC)")
    parser.add_argument("--model", metavar="VERSION", default=None,
                        help="registry version or ONNX path (default: the production version)")
    parser.add_argument("--cluster", default="local", metavar="WHERE",
                        help="local (an embedded Dask cluster, the default), none (this process), a scheduler "
                             "address (tcp://HOST:8786) or a scheduler file (scheduler.json)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes of the local cluster (default: one per GPU when SYNMAG_PROVIDERS "
                             "asks for one, else one per two CPUs)")
    parser.add_argument("--partition", default="1h", metavar="DURATION",
                        help="minutes per task, clock-aligned: 30m, 1h (default), 1d")


def main(args: argparse.Namespace) -> int:
    from service.pipeline.backfill import parse_partition
    from service.settings import get_settings

    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    if end <= start:
        raise UsageError(f"--end ({args.end}) must be after --start ({args.start})")
    size = parse_partition(args.partition)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1: {args.workers}")
    settings = get_settings()
    if args.model is not None:
        settings = settings.model_copy(update={"model": args.model})
    if args.cluster == "none":
        return _in_process(settings, start, end)
    return _on_dask(settings, start, end, args.cluster, args.workers, size, args.partition)


def _in_process(settings: Settings, start: datetime, end: datetime) -> int:
    from service.pipeline.reprocess import reprocess
    from service.pipeline.wiring import open_pipeline

    pipeline = open_pipeline(settings)
    try:
        outcomes = reprocess(pipeline.ctx, start, end, on_outcome=lambda o: print(o.log_line(), flush=True))
    finally:
        pipeline.close()
    counts = Counter(o.outcome for o in outcomes)
    version = pipeline.runtime.version
    print(f"reprocessed {len(outcomes)} minutes with {version}: "
          + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing in range"))
    return 1 if counts.get("failed") else 0


def _on_dask(settings: Settings, start: datetime, end: datetime, cluster: str, workers: int | None,
             size: timedelta, size_text: str) -> int:
    from distributed import progress

    from service.errors import FatalError
    from service.pipeline.backfill import open_client, plan_partitions, submit_backfill
    from service.pipeline.backfill.cluster import default_local_workers, warm_workers
    from service.pipeline.reprocess import source_frames
    from service.pipeline.wiring import open_pipeline

    # The client resolves the version (registering a model given by path) and lists the
    # minutes; it loads the model on the CPU only to check it, leaving the GPUs to the workers.
    pipeline = open_pipeline(settings.model_copy(update={"providers": ["CPUExecutionProvider"], "require_gpu": False}))
    try:
        if pipeline.runtime.current is None:
            raise FatalError("no model loaded: nothing to reprocess with")
        version = pipeline.runtime.current.version
        frames = source_frames(pipeline.ctx, start, end)
    finally:
        pipeline.close()
    partitions = plan_partitions(frames, size)
    if not partitions:
        print(f"reprocessed 0 minutes with {version}: nothing in range")
        return 0
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # -v shows the scheduler's and nannies' log
        logging.getLogger("distributed").setLevel(logging.WARNING)
    local = cluster == "local"
    n_workers = (workers or default_local_workers(settings)) if local else None
    with open_client(cluster, n_workers) as client:
        print(f"{len(frames)} minutes in {len(partitions)} partitions of {size_text}, model {version}; "
              f"dashboard: {client.dashboard_link}", flush=True)
        said, failed = warm_workers(client, settings, version, n_workers)
        for name, text in sorted(said.items()):
            print(f"worker {name}: {text}", flush=True)
        if failed and len(failed) == len(said):  # nothing left to run the partitions
            raise FatalError(f"no worker could load model {version} (see above); nothing was reprocessed")
        run = submit_backfill(client, settings, version, partitions, local_workers=n_workers)
        if sys.stdout.isatty():  # Dask's bar, redrawn in place (it follows the tasks on the scheduler)
            bar = threading.Thread(target=progress, args=(run.futures,), daemon=True)
            bar.start()
            summary = run.collect()
            bar.join(timeout=5)  # its last redraw
            print()
        else:  # a log file: a line each tenth of the partitions, not a redrawn bar
            step = max(1, len(partitions) // 10)
            summary = run.collect(lambda k, n: print(f"{k}/{n} partitions done", flush=True)
                                  if k % step == 0 or k == n else None)
        elapsed = run.elapsed_s
    for line in summary.problem_lines():
        print(line)
    print(f"{summary.line()} ({summary.done} made, {summary.counts['exists']} already there, "
          f"{summary.failed} failed; {elapsed:.1f} s, {summary.minutes / elapsed:.2f} minutes/s)")
    return 1 if summary.failed else 0

