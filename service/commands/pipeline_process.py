"""The pipeline of ``synmag serve`` in a child process, and the parent's handle on it.

Why a process: inference (ONNX Runtime, preprocessing in numpy/astropy) takes
seconds of CPU a minute and much of it holds the GIL, which in one process
starves the API's event loop (the audit measured ``/latest`` at p99 1.1 s while
the feed worked). In its own process and session (:func:`_lower_priority`), at a
lower CPU priority (:data:`PIPELINE_NICE`), it no longer stalls the API.

The parent (:class:`PipelineProcess`) spawns the child (:func:`run_child`), which
opens the pipeline (migrations, registry, model), takes part in the leader
election and runs the scheduler. They talk over one pipe:

child -> parent, each a tuple, relayed into :class:`~service.api.state.AppState`:
``("pipeline", phase, detail)``, ``("model", version, providers)``,
``("tick", at, leader, error)``, ``("product", obs_time, committed_at)``,
``("fatal", message)`` (the service cannot run: the parent exits 1),
``("metrics", request_id, exposition_bytes)`` (answer to a request);

parent -> child: ``("metrics", request_id)`` (the child's Prometheus exposition,
where every pipeline metric lives) and ``("stop",)``.

Stopping: the parent sends ``stop``; the child aborts upstream retries, lets the
running minute finish, releases the leader lock and exits 0. The child also
stops on SIGTERM (a supervisor signalling the whole cgroup) and ignores SIGINT
(in its own session a terminal's Ctrl-C does not reach it; the parent decides). If the parent dies, the kernel kills
the child (``PR_SET_PDEATHSIG``), so a ``kill -9`` of ``synmag serve`` never
leaves an orphan holding the leader lock.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from service.api.state import AppState

log = logging.getLogger("synmag.serve")

# Niceness of the pipeline process (in its own session: see _lower_priority): where it shares a
# scheduling group with the API, the API (nice 0) gets
# about nine tenths of a core against it (Linux CFS weights 1024 vs 110).
PIPELINE_NICE = 10
METRICS_TIMEOUT_S = 5.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # as service.cli sets it


# -- parent side ---------------------------------------------------------------------------
class PipelineProcess:
    """The pipeline's child process, seen from ``synmag serve``.

    Parameters
    ----------
    settings : Settings
        Handed to the child (pickled), which opens the pipeline from them.
    state : AppState
        Updated from the child's reports; the API reads it.
    on_fatal : callable
        Called with a message (from the listener thread) when the child reports a
        fatal error or dies without being asked to stop.
    """

    def __init__(self, settings: Any, state: AppState, on_fatal: Callable[[str], None]) -> None:
        self.settings = settings
        self.state = state
        self.on_fatal = on_fatal
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._conn, child_conn = self._ctx.Pipe(duplex=True)
        self._child_conn = child_conn
        self._process: Any = None
        self._listener: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._metrics_lock = threading.Lock()
        self._metrics_ids = itertools.count(1)
        self._metrics_wanted = 0
        self._metrics_reply: bytes | None = None
        self._metrics_ready = threading.Event()
        self._stopping = False

    def start(self) -> None:
        """Spawn the child (call from the main thread: the child dies with this thread)."""
        self._process = self._ctx.Process(
            target=run_child, name="synmag-pipeline", daemon=False,
            args=(self._child_conn, self.settings, logging.getLogger().level, os.getpid()),
        )
        self._process.start()
        self._child_conn.close()  # the child holds its end: EOF here when it exits
        self._listener = threading.Thread(target=self._listen, name="pipeline-listener", daemon=True)
        self._listener.start()
        log.info("pipeline process started (pid %d, nice +%d)", self._process.pid, PIPELINE_NICE)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def metrics(self, timeout: float = METRICS_TIMEOUT_S) -> bytes | None:
        """The child's Prometheus exposition; None while it is not running or does not answer."""
        if self._process is None or not self._process.is_alive() or self._stopping:
            return None
        with self._metrics_lock:
            self._metrics_wanted = next(self._metrics_ids)
            self._metrics_ready.clear()
            self._metrics_reply = None
            if not self._send(("metrics", self._metrics_wanted)):
                return None
            self._metrics_ready.wait(timeout)
            return self._metrics_reply

    def stop(self, timeout: float) -> int | None:
        """Ask the child to stop, wait up to ``timeout`` s, then kill it; its exit code."""
        if self._process is None:
            return None
        self._stopping = True
        self.state.set_pipeline("stopping")
        self._send(("stop",))
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("pipeline process did not stop within %.0f s: killing it", timeout)
            self._process.kill()
            self._process.join(5)
        if self._listener is not None:
            self._listener.join(2)
        self._conn.close()
        code = self._process.exitcode
        self.state.set_pipeline("stopped", f"exit code {code}")
        return code

    def _send(self, message: tuple) -> bool:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError):  # the child is gone (broken pipe) or the pipe is closed
            return False
        return True

    def _listen(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._handle(message)
            except Exception:  # a malformed report must not end the relay
                log.exception("bad report from the pipeline process: %r", message[:1])
        self._process.join(5)
        if not self._stopping:
            code = self._process.exitcode
            self.state.set_pipeline("failed", f"pipeline process exited (code {code})")
            self.on_fatal(f"the pipeline process exited unexpectedly (exit code {code})")

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "metrics":
            _, request_id, data = message
            if request_id == self._metrics_wanted:
                self._metrics_reply = data
                self._metrics_ready.set()
        elif kind == "product":
            self.state.product_committed(message[1], message[2])
        elif kind == "tick":
            self.state.tick_done(message[1], message[2], message[3])
        elif kind == "model":
            self.state.set_model(message[1], message[2])
        elif kind == "pipeline":
            self.state.set_pipeline(message[1], message[2])
        elif kind == "fatal":
            self.state.set_pipeline("failed", message[1])
            self.on_fatal(message[1])
        else:
            log.warning("unknown report from the pipeline process: %r", kind)


# -- child side ----------------------------------------------------------------------------
class _Reports:
    """The child's end of the pipe: thread-safe sends; a gone parent is not an error."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def __call__(self, message: tuple) -> None:
        try:
            with self.lock:
                self.conn.send(message)
        except (OSError, ValueError):
            pass


class _StateRelay:
    """Stands in for AppState inside the child: what the scheduler reports goes to the parent."""

    last_tick_at: datetime | None = None  # set by the scheduler; the tick report carries it

    def __init__(self, report: _Reports) -> None:
        self._report = report

    def product_committed(self, obs_time: datetime, committed_at: datetime) -> None:
        self._report(("product", obs_time, committed_at))


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), or exit if it has."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still stops the child
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _lower_priority() -> None:
    """A session (so a scheduling group) of its own, at nice +PIPELINE_NICE.

    With Linux autogroups (``kernel.sched_autogroup_enabled``), CPU is shared fairly
    between sessions first and by niceness only inside one: in the API's session the
    pipeline's CPU would be charged to the API's group, and on a busy machine the API
    would then wait behind other sessions for it (measured: /latest p99 194-251 ms
    while processing against 28-43 ms idle). In its own session the pipeline competes
    as one more group and the API's stays light. The group keeps the default weight:
    lowering it too (``/proc/self/autogroup``) starved the feed behind the machine's
    other sessions (one product in 143 s). Without autogroups the plain nice applies.
    """
    os.setsid()
    os.nice(PIPELINE_NICE)


def run_child(conn: Any, settings: Any, log_level: int, parent_pid: int) -> None:
    """Entry point of the pipeline process (spawned by :class:`PipelineProcess`)."""
    _die_with_parent(parent_pid)
    _lower_priority()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    for noisy, level in (("httpx", logging.WARNING), ("apscheduler", logging.ERROR),
                         ("alembic", logging.WARNING)):
        logging.getLogger(noisy).setLevel(level)
    report = _Reports(conn)
    try:
        code = _run(conn, settings, report, stop)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent must hear it
        log.exception("pipeline process failed")
        report(("fatal", f"{type(exc).__name__}: {exc}"))
        code = 1
    conn.close()
    os._exit(code)  # no atexit of inherited handlers; everything is closed above


def _run(conn: Any, settings: Any, report: _Reports, stop: threading.Event) -> int:
    from prometheus_client import generate_latest

    from service import observability as obs
    from service.errors import FatalError
    from service.pipeline.leader import Leadership, make_leader_lock
    from service.pipeline.scheduler import PipelineScheduler
    from service.pipeline.wiring import open_pipeline

    class ReportingScheduler(PipelineScheduler):
        """The scheduler, telling the parent how each tick went."""

        def tick(self):  # noqa: ANN202 - TickReport
            result = super().tick()
            report(("tick", datetime.now(UTC), result.leader, result.error))
            return result

    obs.init_metrics()
    try:
        pipeline = open_pipeline(
            settings, on_model_change=lambda loaded: report(("model", loaded.version, loaded.providers))
        )
    except FatalError as exc:  # e.g. SYNMAG_REQUIRE_GPU and no GPU provider
        report(("fatal", str(exc)))
        return 1
    for mv in pipeline.bundled:
        log.info("registered the bundled %s model %s as production", mv.kind, mv.version)
    ctx, runtime = pipeline.ctx, pipeline.runtime
    current = runtime.current
    report(("model", current.version, current.providers) if current else ("model", None, []))
    from service.sources.registry import open_magnetogram_source

    truth = open_magnetogram_source(settings)  # None for SYNMAG_TRUTH_SOURCE=none
    scheduler = ReportingScheduler(
        ctx, Leadership(make_leader_lock(settings)), state=_StateRelay(report), truth=truth,
        on_fatal=lambda exc: report(("fatal", str(exc))),
    )
    log.info(
        "pipeline: sources %s, database %s, store %s, model %s, providers asked %s",
        ", ".join(ctx.sources), pipeline.engine.url.render_as_string(hide_password=True),
        settings.store_url, runtime.version or "none", ",".join(settings.providers),
    )
    if not stop.is_set():  # a SIGTERM while the model loaded: do not start
        scheduler.start()
        report(("pipeline", "running", None))
    while not stop.is_set():
        try:
            if not conn.poll(0.5):
                continue
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if message[0] == "stop":
            break
        if message[0] == "metrics":
            report(("metrics", message[1], generate_latest(obs.REGISTRY)))
    report(("pipeline", "stopping", None))
    ctx.abort()  # a tick sitting out upstream retries gives up now
    stopper = threading.Thread(target=scheduler.stop, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(timeout=max(30.0, settings.http_timeout_s * 2))
    pipeline.close()
    report(("pipeline", "stopped", None))
    return 0
