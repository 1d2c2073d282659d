"""``synmag serve`` as two processes: the API here, the pipeline in a child that reports to it.

Real subprocesses, SQLite and the tiny ONNX generator; the archive is a closed
loopback port, so every tick fails to list it, which the API must say.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.commands.test_serve_e2e import Cluster, Proc, cluster, metric, wait_for  # noqa: F401 - cluster is a fixture

pytestmark = [pytest.mark.slow]

CLOSED_ARCHIVE = "http://127.0.0.1:9"  # discard port: nothing listens


def child_pid(proc: Proc) -> int:
    found: list[int] = []

    def reported() -> bool:
        m = re.search(r"pipeline process started \(pid (\d+)", proc.log.read_text(errors="replace"))
        if m:
            found.append(int(m.group(1)))
        return bool(m)

    wait_for(reported, 60, "the pipeline process to start")
    return found[0]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def start(c: Cluster) -> tuple[Proc, str, int]:
    proc, api = c.serve(c.serve_env(CLOSED_ARCHIVE, SYNMAG_HTTP_RETRIES="0"))
    pid = child_pid(proc)
    wait_for(lambda: httpx.get(api + "/v1/status", timeout=5).json()["last_tick_at"], 120,
             f"the first tick\n{proc.tail()}")
    return proc, api, pid


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, tiny_onnx: Path) -> Iterator[tuple[Proc, str, int]]:
    """One ``synmag serve`` for the read-only tests below (a start costs seconds of imports)."""
    c = Cluster(tmp_path_factory.mktemp("serve-process"), tiny_onnx)
    try:
        yield start(c)
    finally:
        c.close()


def test_the_pipeline_runs_in_a_lower_priority_child(running: tuple[Proc, str, int]) -> None:
    proc, _, pid = running
    assert pid != proc.popen.pid and alive(pid)
    assert nice_of(pid) in (nice_of(os.getpid()) + 10, 19)


def test_metrics_are_the_childs(running: tuple[Proc, str, int]) -> None:
    _, api, _ = running
    assert metric(api, "synmag_scheduler_leader") == 1.0  # set in the child, served by the parent
    assert metric(api, "synmag_model_loaded") == 1.0


def test_readyz_reports_the_childs_model_and_ticks(running: tuple[Proc, str, int]) -> None:
    _, api, _ = running
    checks = httpx.get(api + "/readyz", timeout=10).json()["checks"]
    assert checks["model"]["ok"] and checks["model"]["detail"].startswith("tiny-test on CPUExecutionProvider")
    assert checks["pipeline"]["ok"] and checks["pipeline"]["detail"].startswith("running, leader")


def test_status_says_the_archive_is_unreachable(running: tuple[Proc, str, int]) -> None:
    _, api, _ = running
    status = httpx.get(api + "/v1/status", timeout=10).json()
    assert status["pipeline"] == "running" and status["model_version"] == "tiny-test"
    assert any(r.startswith("the last scheduler tick failed:") for r in status["reasons"]), status


def test_sigterm_stops_the_child_too(cluster: Cluster) -> None:  # noqa: F811
    proc, _, pid = start(cluster)
    t0 = time.monotonic()
    assert proc.stop() == 0, proc.tail()
    assert time.monotonic() - t0 < 30
    assert not alive(pid)
    assert "pipeline process exit code 0" in proc.tail()


def test_kill9_of_serve_takes_the_child_with_it(cluster: Cluster) -> None:  # noqa: F811
    proc, _, pid = start(cluster)
    proc.kill9()
    wait_for(lambda: not alive(pid), 10, "the orphaned pipeline process to die")


def test_a_dead_child_makes_serve_exit_1_with_the_reason(cluster: Cluster) -> None:  # noqa: F811
    proc, _, pid = start(cluster)
    os.kill(pid, signal.SIGKILL)
    assert proc.popen.wait(60) == 1
    assert "the pipeline process exited unexpectedly" in proc.tail()


def test_a_fatal_start_in_the_child_makes_serve_exit_1(cluster: Cluster) -> None:  # noqa: F811
    env = cluster.serve_env(CLOSED_ARCHIVE, SYNMAG_REQUIRE_GPU="true", SYNMAG_PROVIDERS="cuda,cpu")
    proc, _ = cluster.serve(env)
    assert proc.popen.wait(120) == 1
    assert "SYNMAG_REQUIRE_GPU" in proc.tail()
