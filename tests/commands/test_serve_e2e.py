"""``synmag serve`` as a subprocess fed by ``synmag replay`` (real val frames) on loopback.

The replay runs its clock fast (a new observation minute every few seconds,
stamped in the recent past) and stops after ``--limit`` minutes, so each test
knows every minute that should get a product. Both processes are real: SQLite
file, file store, the tiny ONNX generator as ``SYNMAG_MODEL``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPO_ROOT
from tests.frames import link_val_days

pytestmark = [pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.5) -> float:
    """Poll ``cond`` until true; returns the seconds waited, fails the test on timeout."""
    start = time.monotonic()
    while True:
        try:
            if cond():
                return time.monotonic() - start
        except Exception:  # the server is not up yet, the database not created yet...
            pass
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    popen: subprocess.Popen
    log: Path
    log_file: object = None

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 40) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@dataclass
class Cluster:
    """Processes started by one test, stopped at its end whatever happens."""

    tmp: Path
    tiny_onnx: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNMAG_")}
        full_env.update(env or {})
        log_file = open(log, "ab")  # noqa: SIM115 - closed in close()
        popen = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args], cwd=REPO_ROOT, env=full_env,
            stdout=log_file, stderr=subprocess.STDOUT,
        )
        proc = Proc(popen, log, log_file)
        self.procs.append(proc)
        return proc

    def replay(self, source: Path, *options: str) -> str:
        port = free_port()
        self.spawn("replay", ["replay", str(source), "--port", str(port), "--sites", "BL", *options])
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(url + "/", timeout=2).status_code == 200, 30, "the replay archive")
        return url

    def serve_env(self, archive_url: str, database_url: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            "SYNMAG_GONG_BASE_URL": archive_url,
            "SYNMAG_DATABASE_URL": database_url or f"sqlite:///{self.tmp}/synmag.db",
            "SYNMAG_STORE_URL": f"file://{self.tmp}/store",
            "SYNMAG_MODEL": str(self.tiny_onnx),
            "SYNMAG_MODEL_CACHE_DIR": str(self.tmp / "model-cache"),
            "SYNMAG_BUNDLED_MODEL_DIR": str(self.tmp / "no-bundled-models"),
            "SYNMAG_TICK_SECONDS": "2",
            "SYNMAG_MINUTES_PER_TICK": "3",
            "SYNMAG_HTTP_TIMEOUT_S": "10",
            "SYNMAG_HTTP_RETRIES": "4",
            "SYNMAG_HTTP_BACKOFF_BASE_S": "0.2",
            "SYNMAG_HTTP_BACKOFF_CAP_S": "1.0",
            "SYNMAG_CATCHUP_HOURS": "2",
        }
        env.update(extra)
        return env

    def serve(self, env: dict[str, str], name: str = "serve") -> tuple[Proc, str]:
        port = free_port()
        proc = self.spawn(f"{name}-{port}", ["serve", "--port", str(port)], env)
        return proc, f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(10)
            proc.log_file.close()  # type: ignore[attr-defined]


@pytest.fixture
def cluster(tmp_path: Path, tiny_onnx: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, tiny_onnx)
    yield c
    c.close()


@pytest.fixture
def val_source(data_dir: Path, tmp_path: Path) -> Path:
    """Eight real val days (H-alpha with their HMI truth) for the replay to cycle through."""
    return link_val_days(data_dir, tmp_path / "val-source", 8)


# -- reading the service's database ------------------------------------------------------
PRODUCTS_SQL = """
SELECT p.id, p.obs_minute, p.site, p.model_version, p.preprocess_version, p.fits_uri, f.sha256
FROM products p JOIN input_frames f ON f.id = p.input_frame_id ORDER BY p.obs_minute
"""


class Db:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def rows(self, sql: str) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql)))

    def products(self) -> list:
        return self.rows(PRODUCTS_SQL)

    def final_minutes(self) -> set[str]:
        rows = self.rows("SELECT obs_minute FROM minute_states WHERE state IN ('done','rejected','failed')")
        return {_minute_key(r[0]) for r in rows}


def _minute_key(value: object) -> str:
    """A minute as ``YYYY-mm-ddTHH:MM`` whether SQLite returned text or a datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if value.tzinfo else value.strftime("%Y-%m-%dT%H:%M")
    return str(value).replace(" ", "T")[:16]


def published_minutes(archive_url: str) -> set[str]:
    """Every observation minute the replay lists now."""
    from service.sources.gong.archive import parse_listing

    now = datetime.now(UTC)
    minutes = set()
    for day in {now.date(), (now - timedelta(hours=2)).date()}:
        page = httpx.get(f"{archive_url}/HA/haf/{day:%Y%m}/{day:%Y%m%d}/", timeout=10)
        if page.status_code == 200:
            minutes |= {f.minute.strftime("%Y-%m-%dT%H:%M") for f in parse_listing(page.text, archive_url)}
    return minutes


def metric(api_url: str, line_start: str) -> float:
    """Value of the first exposition line starting with ``line_start``."""
    for line in httpx.get(api_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starting with {line_start!r}")


def store_fits(tmp: Path) -> list[Path]:
    return sorted((tmp / "store" / "products").rglob("*.fits"))


# -- the tests ----------------------------------------------------------------------------
MINUTES = 12


def test_bar_faulty_archive_then_kill9_and_restart(cluster, val_source):
    """The issue's bar: 500 on every 7th download, truncation on every 11th; kill -9; restart."""
    archive = cluster.replay(val_source, "--cadence", "4", "--rewind", "20", "--backlog", "2",
                             "--limit", str(MINUTES), "--fail-every", "7", "--truncate-every", "11")
    env = cluster.serve_env(archive)
    db = Db(env["SYNMAG_DATABASE_URL"])
    first, api = cluster.serve(env, "first")
    took = wait_for(lambda: len(db.products()) >= 3, 150, "three products")
    assert took < 150
    assert httpx.get(api + "/healthz", timeout=5).status_code == 200
    wait_for(lambda: len(db.products()) >= 5, 60, "five products")
    first.kill9()  # mid-run: the next minute is being downloaded or processed
    at_kill = len(db.products())

    second, api = cluster.serve(env, "second")
    wait_for(lambda: len(published_minutes(archive)) == MINUTES, 90, "the replay's last minute")
    expected = published_minutes(archive)
    wait_for(lambda: expected <= db.final_minutes(), 120, f"all {MINUTES} minutes done\n{second.tail()}")
    products = db.products()
    assert second.stop() == 0, second.tail()  # SIGTERM: a clean exit
    assert re.search(r"stopped in \d+\.\d s \(up \d+ s\)", second.tail()), second.tail()

    minutes = [_minute_key(p.obs_minute) for p in products]
    assert len(products) > at_kill  # new products kept coming after the restart
    assert len(minutes) == len(set(minutes))  # no minute has two products
    assert set(minutes) == expected  # and none was lost: every faulty download was retried
    for p in products:
        assert len(p.sha256) == 64 and p.site in ("BB", "LE")
        assert p.model_version == "tiny-test" and p.preprocess_version
    assert len(store_fits(cluster.tmp)) == len(products)  # no orphan or duplicate object
    db.close()


def test_timeouts_and_broken_files_are_retried_or_rejected_while_serving(cluster, val_source):
    archive = cluster.replay(val_source, "--cadence", "3", "--rewind", "15", "--backlog", "2", "--limit", "6",
                             "--fail-every", "3", "--stall-every", "5", "--stall-s", "4",
                             "--short-file-every", "4")
    env = cluster.serve_env(archive, SYNMAG_HTTP_TIMEOUT_S="1.5", SYNMAG_TICK_SECONDS="4")
    db = Db(env["SYNMAG_DATABASE_URL"])
    proc, api = cluster.serve(env)
    wait_for(lambda: httpx.get(api + "/healthz", timeout=2).status_code == 200, 60, "the API")
    # the pipeline runs in serve's child process: count from its first tick (its model loaded)
    wait_for(lambda: httpx.get(api + "/v1/status", timeout=5).json()["last_tick_at"], 120, "the first tick")
    to_first = wait_for(lambda: db.products(), 60, "the first product")
    assert to_first <= 2 * 4 + 15  # within two ticks (plus the time one minute takes on 2 CPUs)

    wait_for(lambda: len(published_minutes(archive)) == 6, 60, "the replay's last minute")
    expected = published_minutes(archive)
    wait_for(lambda: expected <= db.final_minutes(), 120, f"all minutes done\n{proc.tail()}")
    assert httpx.get(api + "/healthz", timeout=5).status_code == 200  # still up
    reasons = {(r[0], r[1]) for r in db.rows("SELECT stage, reason FROM rejections")}
    assert reasons & {("decode", "truncated"), ("decode", "corrupt_fits")}, reasons
    assert metric(api, 'synmag_upstream_errors_total{kind="timeout"}') > 0
    assert metric(api, 'synmag_upstream_errors_total{kind="http_5xx"}') > 0
    assert metric(api, "synmag_products_total") == len(db.products())
    # the B frames are intact, so every minute still got its product (from B)
    assert {_minute_key(p.obs_minute) for p in db.products()} == expected
    assert proc.stop() == 0
    db.close()


def test_serve_refuses_to_start_without_gpu_when_one_is_required(cluster):
    env = cluster.serve_env("http://127.0.0.1:9", SYNMAG_REQUIRE_GPU="true", SYNMAG_PROVIDERS="cuda,cpu")
    proc = cluster.spawn("gpu", ["serve", "--once"], env)
    assert proc.popen.wait(120) == 1
    assert "SYNMAG_REQUIRE_GPU" in proc.log.read_text()


def test_serve_without_any_model_runs_and_records_minutes_as_skipped(cluster, val_source):
    archive = cluster.replay(val_source, "--cadence", "60", "--rewind", "10", "--backlog", "2")
    env = cluster.serve_env(archive)
    env.pop("SYNMAG_MODEL")
    proc = cluster.spawn("no-model", ["serve", "--once"], env)
    assert proc.popen.wait(120) == 0, proc.tail()
    log = proc.log.read_text()
    assert "no model available" in log and '"outcome":"no_model"' in log
    db = Db(env["SYNMAG_DATABASE_URL"])
    assert db.rows("SELECT DISTINCT state, detail FROM minute_states") == [("skipped", "no_model")]
    db.close()
