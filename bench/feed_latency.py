"""Feed latency: a frame appears in the archive -> its product is committed (goal: p95 <= 30 s).

A replay archive on loopback publishes real val frames (two sites a minute) as the real
archive would, one minute every ``CADENCE_S`` seconds (a rewound past replayed quickly:
each minute appears at a known wall time), and a real ``synmag serve`` (subprocess, its
defaults: tick 10 s, settle 10 s, the bundled model, SQLite, a file store) works the
feed. For every minute: the wall time its frames were first listed (the replay's
publication time) and the product's ``created_at``. Printed: p50, p95 and max of the
latency, and p95 / 30 s as the ratio. The scheduler's own view is the histogram
``synmag_listed_to_product_seconds`` in /metrics.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

GOAL_S = 30.0
MINUTES = int(os.environ.get("SYNMAG_BENCH_MINUTES", "18"))
CADENCE_S = 20.0  # a minute appears every 20 s: the service must keep up with 3x real time
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run() -> dict:
    from service.devtools.replay import ReplayArchive, serve_in_thread

    data = Path(os.environ.get("DATA_DIR", REPO.parent / "shared/data/ha2mag")) / "val"
    with tempfile.TemporaryDirectory(prefix="synmag-bench-latency-") as tmp_name:
        tmp = Path(tmp_name)
        replay = ReplayArchive(data, cadence_s=CADENCE_S, rewind_minutes=2 * MINUTES + 5, backlog=0,
                               sites="BL", limit=MINUTES)
        server, url = serve_in_thread(replay)
        port = _free_port()
        env = {**os.environ, "SYNMAG_GONG_BASE_URL": url, "SYNMAG_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite",
               "SYNMAG_STORE_URL": f"file://{tmp}/store", "SYNMAG_MODEL_CACHE_DIR": str(tmp / "cache"),
               "SYNMAG_API_PORT": str(port), "SYNMAG_CATCHUP_HOURS": "2", "SYNMAG_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], env=env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + MINUTES * CADENCE_S + 300
            rows: list[tuple[str, str]] = []
            while time.monotonic() < deadline and len(rows) < MINUTES:
                time.sleep(2)
                if (tmp / "db.sqlite").is_file():
                    try:
                        with sqlite3.connect(tmp / "db.sqlite") as db:
                            rows = db.execute("SELECT obs_minute, created_at FROM products").fetchall()
                    except sqlite3.OperationalError:  # not migrated yet
                        rows = []
        finally:
            proc.terminate()
            proc.wait(60)
            server.shutdown()
            server.server_close()
    latencies = []
    for minute_text, created_text in rows:
        minute = datetime.fromisoformat(minute_text).replace(tzinfo=UTC)
        k = round((minute - replay.anchor) / timedelta(minutes=1))
        published = replay.started + timedelta(seconds=k * CADENCE_S)  # minute k listed from then on
        created = datetime.fromisoformat(created_text).replace(tzinfo=UTC)
        latencies.append((created - published).total_seconds())
    if not latencies:
        raise RuntimeError("no product was made")
    p95 = _percentile(latencies, 0.95)
    return {
        "minutes": len(latencies), "cadence_s": CADENCE_S,
        "latency_p50_s": round(_percentile(latencies, 0.5), 1), "latency_p95_s": round(p95, 1),
        "latency_max_s": round(max(latencies), 1), "goal_p95_s": GOAL_S, "ratio": round(p95 / GOAL_S, 2),
    }
