"""Backfill throughput: frames/s of ``synmag reprocess`` in one process, one Dask worker, two.

A feed's past (``service.devtools.feed_history``: replayed val frames processed by the
feed) is backfilled three times, each time with another version of the same network (its
``synmag.version`` rewritten, so every run does the whole work): in this process
(``reprocess``, as ``--cluster none``), then on a ``LocalCluster`` of one worker and of two
(``service.pipeline.backfill``, as ``--cluster local``), workers warmed (model loaded)
before the clock starts: the steady rate a long backfill has. SQLite and a file store, so
it runs anywhere; the model is the bundled production model (what a real backfill runs).

Reported: frames/s of each (the best of ``SYNMAG_BENCH_BACKFILL_ROUNDS`` interleaved rounds,
default 2, each round's figures beside), ``ratio_two_workers`` (two workers / one process)
and ``ratio_one_worker``, the machine's CPUs, and ``year_hours_one_machine``: 525,000 product
minutes at the two-worker rate. ``SYNMAG_BENCH_BACKFILL_MINUTES`` (default 16) sets the size.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
YEAR_MINUTES = 525_000


def _variant(model: Path, version: str, folder: Path) -> Path:
    """The same network under another ``synmag.version`` (other bytes: another registry version)."""
    import onnx

    proto = onnx.load(str(model))
    props = {p.key: p for p in proto.metadata_props}
    if "synmag.version" in props:
        props["synmag.version"].value = version
    else:
        proto.metadata_props.add(key="synmag.version", value=version)
    path = folder / f"{version}.onnx"
    onnx.save(proto, str(path))
    return path


def _in_process(settings: Settings, span: tuple[datetime, datetime]) -> float:
    from service.pipeline.reprocess import reprocess
    from service.pipeline.wiring import open_pipeline

    pipeline = open_pipeline(settings)  # the model is loaded here, before the clock
    try:
        t0 = time.perf_counter()
        outcomes = reprocess(pipeline.ctx, *span)
        seconds = time.perf_counter() - t0
    finally:
        pipeline.close()
    if {o.outcome for o in outcomes} != {"product"}:
        raise RuntimeError(f"in-process backfill: {[o.log_line() for o in outcomes if o.outcome != 'product']}")
    return len(outcomes) / seconds


def _on_dask(settings: Settings, span: tuple[datetime, datetime], workers: int, partition: timedelta) -> float:
    from service.pipeline.backfill import open_client, plan_partitions, submit_backfill
    from service.pipeline.backfill.cluster import warm_workers
    from service.pipeline.reprocess import source_frames
    from service.pipeline.wiring import open_pipeline

    pipeline = open_pipeline(settings)
    version = pipeline.runtime.version
    partitions = plan_partitions(source_frames(pipeline.ctx, *span), partition)
    pipeline.close()
    with open_client("local", workers, dashboard=None) as client:
        warmed, failed = warm_workers(client, settings, version, local_workers=workers)
        if len(warmed) != workers or failed:
            raise RuntimeError(f"workers did not load the model: {warmed}")
        t0 = time.perf_counter()
        summary = submit_backfill(client, settings, version, partitions, local_workers=workers).collect()
        seconds = time.perf_counter() - t0
    if summary.done != summary.minutes:
        raise RuntimeError(f"{workers}-worker backfill: {summary.line()} {summary.problem_lines()}")
    return summary.minutes / seconds


def run() -> dict:
    from service.devtools.feed_history import make_history
    from service.settings import Settings

    data = Path(os.environ.get("DATA_DIR", REPO.parent / "shared/data/ha2mag")) / "val"
    bundled = sorted((REPO / "models").glob("*.onnx"))
    if not data.is_dir():
        return {"skipped": f"no val data at {data}"}
    if not bundled:
        return {"skipped": "no bundled model in models/"}
    try:
        import onnx  # noqa: F401 - the variants are written with it (train extra)
    except ImportError:
        return {"skipped": "onnx not installed (the train extra): model variants cannot be written"}
    minutes = int(os.environ.get("SYNMAG_BENCH_BACKFILL_MINUTES", "16"))
    rounds = int(os.environ.get("SYNMAG_BENCH_BACKFILL_ROUNDS", "2"))
    partition = timedelta(minutes=2)
    with tempfile.TemporaryDirectory(prefix="synmag-bench-backfill-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "val"
        source.mkdir()
        for path in sorted(data.glob("*_halpha.webp"))[:minutes]:
            (source / path.name).symlink_to(path)
        settings = Settings(
            database_url=f"sqlite:///{tmp}/db.sqlite", store_url=f"file://{tmp}/store",
            model=str(_variant(bundled[-1], "bench-seed", tmp)), model_cache_dir=tmp / "cache",
            bundled_model_dir=tmp / "none", providers=os.environ.get("SYNMAG_PROVIDERS", "CPUExecutionProvider"),
        )
        t0 = time.perf_counter()
        done = make_history(settings, source, minutes)
        seed_s = time.perf_counter() - t0
        span = (done[0], done[-1] + timedelta(minutes=1))

        def as_version(version: str) -> Settings:
            return settings.model_copy(update={"model": str(_variant(bundled[-1], version, tmp))})

        rates: dict[str, list[float]] = {"one_process": [], "one_worker": [], "two_workers": []}
        for r in range(rounds):  # interleaved, so that a burst of other work does not hit one alone
            rates["one_process"].append(_in_process(as_version(f"bench-process-{r}"), span))
            rates["one_worker"].append(_on_dask(as_version(f"bench-worker1-{r}"), span, 1, partition))
            rates["two_workers"].append(_on_dask(as_version(f"bench-worker2-{r}"), span, 2, partition))
    one_process, one_worker, two_workers = (max(rates[k]) for k in ("one_process", "one_worker", "two_workers"))
    return {
        "frames": minutes,
        "model": bundled[-1].name,
        "cpus": len(os.sched_getaffinity(0)),
        "seed_s": round(seed_s, 1),
        "rounds": {k: [round(v, 3) for v in vs] for k, vs in rates.items()},
        "one_process_fps": round(one_process, 3),
        "one_worker_fps": round(one_worker, 3),
        "two_workers_fps": round(two_workers, 3),
        "ratio_one_worker": round(one_worker / one_process, 2),
        "ratio_two_workers": round(two_workers / one_process, 2),
        "year_hours_one_machine": round(YEAR_MINUTES / two_workers / 3600, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
