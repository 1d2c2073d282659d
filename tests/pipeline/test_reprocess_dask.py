"""The backfill on Dask (service.pipeline.backfill): two local worker processes on PostgreSQL + S3.

A season of feed is made once for the module (``make_history``: replayed minutes processed by
model ``tiny-test``); each test backfills it with another version. The workers are real
processes started by ``LocalCluster``; one is killed with SIGKILL while it works.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from distributed import LocalCluster
from sqlalchemy import func, select

from service.cli import main as synmag
from service.db import InputFrame, Product, make_engine, session_scope
from service.devtools.feed_history import make_history
from service.errors import UsageError
from service.pipeline.backfill import (
    BackfillSummary,
    open_client,
    parse_partition,
    plan_partitions,
    submit_backfill,
)
from service.pipeline.reprocess import source_frames
from service.pipeline.wiring import open_pipeline
from service.settings import Settings
from service.storage import open_store

# The bar's drill is this file with SYNMAG_BACKFILL_MINUTES=240 (and pytest --timeout 3600).
MINUTES = int(os.environ.get("SYNMAG_BACKFILL_MINUTES", "12"))


def test_partitions_are_clock_aligned_windows_without_empty_ones() -> None:
    t = datetime(2024, 5, 1, 10, 58, tzinfo=UTC)
    frames = [(t + timedelta(minutes=k), k) for k in (0, 1, 2, 3, 200)]
    parts = plan_partitions(frames, parse_partition("1h"))
    assert [(p.start.hour, [i for _, i in p.items]) for p in parts] == [(10, [0, 1]), (11, [2, 3]), (14, [200])]


@pytest.mark.parametrize("text", ["1h30", "30s", "90s", "0m", "h"])
def test_a_partition_is_a_whole_number_of_minutes(text: str) -> None:
    with pytest.raises(UsageError):
        parse_partition(text)


def test_a_local_worker_gets_its_share_of_the_cpus_and_its_own_gpu() -> None:
    code = ("import os; from service.pipeline.backfill.worker import place_local_worker; "
            "place_local_worker(1, 2, ['CUDAExecutionProvider', 'CPUExecutionProvider']); "
            "print(os.environ['CUDA_VISIBLE_DEVICES'], sorted(os.sched_getaffinity(0)))")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5", "PYTHONPATH": str(Path(__file__).parents[2])}
    cpus = sorted(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    share = len(cpus) // 2
    assert out.split(" ", 1) == ["5", f"{cpus[share:2 * share] or cpus}\n"]


@dataclass
class History:
    """``MINUTES`` minutes with a ``tiny-test`` product each, on one database and bucket."""

    settings: Settings
    minutes: list[datetime]
    model: object  # tiny_onnx_factory: another version of the same network
    s3: object  # a boto3 client of the bucket's server
    bucket: str

    @property
    def span(self) -> tuple[datetime, datetime]:
        return self.minutes[0], self.minutes[-1] + timedelta(minutes=1)

    def with_model(self, version: str) -> Settings:
        return self.settings.model_copy(update={"model": str(self.model(version=version))})

    def products_of(self, version: str) -> Counter:
        """Product rows of ``version`` per minute."""
        engine = make_engine(self.settings)
        try:
            with session_scope(engine) as s:
                rows = s.execute(select(Product.obs_minute, func.count()).where(Product.model_version == version)
                                 .group_by(Product.obs_minute)).all()
        finally:
            engine.dispose()
        return Counter({m: n for m, n in rows})

    def objects_of(self, version: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="synmag/products/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return [k for k in keys if k.endswith((f"_{version}.fits", f"_{version}.png"))]


@pytest.fixture(scope="module")
def history(postgres_server, seaweedfs, data_dir: Path, tiny_onnx, tiny_onnx_factory,
            tmp_path_factory) -> Iterator[History]:
    tmp = tmp_path_factory.mktemp("backfill")
    saved = {k: os.environ.get(k) for k in seaweedfs.env()}
    os.environ.update(seaweedfs.env())  # the S3 credentials, inherited by the worker processes
    folder = tmp / "val"
    folder.mkdir()
    for halpha in sorted((data_dir / "val").glob("*_halpha.webp"))[:MINUTES]:
        (folder / halpha.name).symlink_to(halpha)
    bucket = seaweedfs.create_bucket()
    settings = Settings(
        database_url=postgres_server.create_database(), store_url=f"s3://{bucket}/synmag",
        s3_endpoint_url=seaweedfs.endpoint_url, model=str(tiny_onnx), model_cache_dir=tmp / "cache",
        bundled_model_dir=tmp / "no-models",
    )
    try:
        yield History(settings, make_history(settings, folder, MINUTES), tiny_onnx_factory, seaweedfs.client(), bucket)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _backfill(settings: Settings, span: tuple[datetime, datetime], partition: timedelta,
              during=None) -> BackfillSummary:  # noqa: ANN001 - during(client, run): a hook mid-run
    pipeline = open_pipeline(settings)
    version = pipeline.runtime.version
    partitions = plan_partitions(source_frames(pipeline.ctx, *span), partition)
    pipeline.close()
    with open_client("local", 2, dashboard=None) as client:
        run = submit_backfill(client, settings, version, partitions, local_workers=2)
        if during is not None:
            during(client, run)
        return run.collect()


def _kill_a_busy_worker_at_half(client, run) -> None:  # noqa: ANN001
    """SIGKILL a worker process while it executes a partition, once half the partitions are done."""
    deadline = time.monotonic() + 300
    while sum(f.done() for f in run.futures) < len(run.futures) // 2:
        assert time.monotonic() < deadline, "half the partitions not done in 300 s"
        time.sleep(0.05)
    while True:
        executing = client.run(lambda dask_worker: [str(k) for k, ts in dask_worker.state.tasks.items()
                                                    if ts.state == "executing"])
        busy = [addr for addr, keys in executing.items() if keys]
        if busy:
            break
        assert time.monotonic() < deadline and not all(f.done() for f in run.futures), "no worker busy"
        time.sleep(0.01)
    os.kill(client.run(os.getpid, workers=[busy[0]])[busy[0]], signal.SIGKILL)
    # The scheduler counts a task as suspicious when a worker dies while running it.
    deadline = time.monotonic() + 60
    while not client.run_on_scheduler(
            lambda dask_scheduler: sum(ts.suspicious for ts in dask_scheduler.tasks.values())):
        assert time.monotonic() < deadline, "the scheduler never saw the worker die"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.servers
def test_a_worker_killed_mid_run_loses_no_minute_duplicates_none_and_a_rerun_does_nothing(history) -> None:
    settings = history.with_model("tiny-b")
    partition = timedelta(minutes=max(2, MINUTES // 8))
    summary = _backfill(settings, history.span, partition, during=_kill_a_busy_worker_at_half)
    assert summary.failed == 0 and summary.minutes == MINUTES
    assert summary.done + summary.counts["exists"] == MINUTES  # a retried task finds the killed one's work
    products = history.products_of("tiny-b")
    assert sorted(products) == history.minutes and set(products.values()) == {1}
    assert len(history.objects_of("tiny-b")) == 2 * MINUTES  # a FITS and a PNG a minute, no strays

    again = _backfill(settings, history.span, partition)
    assert again.counts == Counter({"exists": MINUTES}) and again.problems == []
    assert history.products_of("tiny-b") == products


@pytest.mark.slow
@pytest.mark.servers
def test_a_minute_whose_archived_input_is_gone_fails_alone_with_its_reason(history) -> None:
    store = open_store(history.settings)
    engine = make_engine(history.settings)
    with session_scope(engine) as s:
        raw_uri = s.scalar(select(InputFrame.raw_uri).join(Product, Product.input_frame_id == InputFrame.id)
                           .where(Product.obs_minute == history.minutes[1]))
    engine.dispose()
    key = store.key_for(raw_uri)
    raw = store.get(key)
    history.s3.delete_object(Bucket=history.bucket, Key=f"synmag/{key}")
    try:
        summary = _backfill(history.with_model("tiny-e"), history.span, timedelta(minutes=5))
    finally:
        store.put(key, raw)
    assert summary.counts == Counter({"product": MINUTES - 1, "failed": 1})
    ((minute, outcome, detail),) = summary.problems
    assert minute == history.minutes[1].strftime("%Y-%m-%dT%H:%MZ") and outcome == "failed" and "missing" in detail


@pytest.mark.slow
@pytest.mark.servers
def test_the_command_runs_on_a_local_cluster_and_says_what_it_did(history, monkeypatch, capsys) -> None:
    s = history.with_model("tiny-d")
    for key, value in {"DATABASE_URL": s.database_url, "STORE_URL": s.store_url, "S3_ENDPOINT_URL": s.s3_endpoint_url,
                       "MODEL_CACHE_DIR": str(s.model_cache_dir), "BUNDLED_MODEL_DIR": str(s.bundled_model_dir)}.items():
        monkeypatch.setenv(f"SYNMAG_{key}", value)
    start, end = (t.isoformat() for t in history.span)
    args = ["reprocess", "--start", start, "--end", end, "--model", s.model, "--workers", "2", "--partition", "4m"]
    assert synmag(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"{MINUTES} minutes in [34] partitions of 4m, model tiny-d; dashboard: http://.+", out[0])
    assert out[1:3] == ["worker 0: CPUExecutionProvider", "worker 1: CPUExecutionProvider"]
    assert out[-1].startswith(f"reprocessed {MINUTES} minutes with tiny-d: {MINUTES} product ({MINUTES} made, ")


@pytest.mark.slow
@pytest.mark.servers
def test_the_command_runs_on_a_running_scheduler(history, monkeypatch, capsys) -> None:
    s = history.with_model("tiny-f")
    for key, value in {"DATABASE_URL": s.database_url, "STORE_URL": s.store_url, "S3_ENDPOINT_URL": s.s3_endpoint_url,
                       "MODEL_CACHE_DIR": str(s.model_cache_dir), "BUNDLED_MODEL_DIR": str(s.bundled_model_dir)}.items():
        monkeypatch.setenv(f"SYNMAG_{key}", value)
    start, end = (t.isoformat() for t in history.span)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        assert synmag(["reprocess", "--start", start, "--end", end, "--model", s.model,
                       "--cluster", cluster.scheduler_address]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:2] == ["worker 0: CPUExecutionProvider"]
    assert out[-1].startswith(f"reprocessed {MINUTES} minutes with tiny-f: {MINUTES} product ({MINUTES} made, ")


@pytest.mark.slow
@pytest.mark.servers
def test_workers_that_cannot_load_the_model_stop_the_command_with_why(history, monkeypatch, capsys) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("a GPU build of ONNX Runtime: the workers would load the model")
    s = history.with_model("tiny-g")
    for key, value in {"DATABASE_URL": s.database_url, "STORE_URL": s.store_url, "S3_ENDPOINT_URL": s.s3_endpoint_url,
                       "MODEL_CACHE_DIR": str(s.model_cache_dir), "BUNDLED_MODEL_DIR": str(s.bundled_model_dir),
                       "PROVIDERS": "cuda,cpu", "REQUIRE_GPU": "true"}.items():
        monkeypatch.setenv(f"SYNMAG_{key}", value)
    start, end = (t.isoformat() for t in history.span)
    code = synmag(["reprocess", "--start", start, "--end", end, "--model", s.model, "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 1 and "no worker could load model tiny-g" in err
    workers = [line for line in out.splitlines() if line.startswith("worker ")]
    assert len(workers) == 2 and all("SYNMAG_REQUIRE_GPU is set" in line for line in workers)
    assert history.products_of("tiny-g") == Counter()
