"""A real Prometheus server on loopback for the tests (pytest plugin).

Debian's ``prometheus`` binary (or ``SYNMAG_PROMETHEUS_BIN``) starts with a
temporary configuration that scrapes the given targets every second and a
temporary TSDB; it listens on 127.0.0.1 on a free port. Skips locally when the
binary is missing, fails under CI (``tests.conftest.require``).

Fixtures
--------
prometheus_factory
    ``start(targets, job="synmag", rule_files=()) -> PrometheusServer``; every
    server started is stopped at the end of the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import require

PROMETHEUS_BIN = os.environ.get("SYNMAG_PROMETHEUS_BIN", "prometheus")
SCRAPE_INTERVAL = "1s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrometheusServer:
    """A running Prometheus: ``url``, ``query(expr)``, ``wait_for(expr)``."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list of the API answer."""
        res = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        res.raise_for_status()
        body = res.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        res = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        res.raise_for_status()
        return res.json()["data"]["activeTargets"]

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns something; fail with the targets' state if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"no result for {expr!r} after {timeout} s; targets: {self.targets()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_prometheus(
    base: Path, targets: Sequence[str], job: str = "synmag", rule_files: Sequence[Path] = ()
) -> PrometheusServer:
    """Start Prometheus in ``base`` scraping ``targets`` (``host:port``) as ``job``."""
    binary = shutil.which(PROMETHEUS_BIN)
    require(binary is not None, f"{PROMETHEUS_BIN} (Debian prometheus) is not installed")
    base.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log_path = base / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={base / 'prometheus.yml'}",
             f"--storage.tsdb.path={base / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, cwd=base,
        )
    server = PrometheusServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"prometheus did not become ready:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Any]:
    """Start real Prometheus servers for this test; all are stopped afterwards."""
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str], job: str = "synmag", rule_files: Sequence[Path] = ()) -> PrometheusServer:
        server = start_prometheus(tmp_path / f"prometheus-{len(started)}", targets, job, rule_files)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
