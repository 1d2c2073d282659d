"""``synmag serve``: the HTTP API in this process, the scheduler and pipeline in a child process.

At start: database migrations, then the pipeline process
(:mod:`service.commands.pipeline_process`, at a lower CPU priority) registers the
bundled model when the registry has no production version, loads the inference
session (reporting a fatal error, so that this command exits 1, when
``SYNMAG_REQUIRE_GPU`` is set and no GPU provider is active) and ticks every
``SYNMAG_TICK_SECONDS`` (only on the replica holding the leader lock), while
uvicorn serves the API on ``SYNMAG_API_HOST:SYNMAG_API_PORT`` here. Inference
never runs on the API's event loop nor under its GIL; ``/readyz``, ``/v1/status``
and ``/metrics`` show what the pipeline process reports.

SIGTERM or Ctrl-C stops the HTTP server, then the pipeline process (the running
minute finishes, the leader lock is released). ``--once`` runs a single tick in
this process and exits (no HTTP server).

Each minute's outcome is logged as one JSON line (logger ``synmag.minute``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from typing import Any

log = logging.getLogger("synmag.serve")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="run one scheduler tick and exit")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default SYNMAG_API_PORT)")
    parser.add_argument("--host", default=None, help="HTTP address (default SYNMAG_API_HOST)")


def _quiet_loggers() -> None:
    # One line per minute comes from synmag.minute; per-request and per-job chatter is noise.
    # (a tick longer than the period is skipped by design: coalesce, max_instances=1)
    for noisy, level in (("httpx", logging.WARNING), ("apscheduler", logging.ERROR)):
        logging.getLogger(noisy).setLevel(level)


def main(args: Any) -> int:
    from service import observability as obs
    from service.errors import UsageError
    from service.settings import load_settings

    try:
        settings = load_settings()
    except Exception as exc:  # pydantic ValidationError: say which variable is wrong
        raise UsageError(f"invalid settings: {exc}") from exc
    obs.init_metrics()
    _quiet_loggers()
    if args.once:
        return _once(settings)
    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    return _serve(settings, host, port)


def _once(settings: Any) -> int:
    """One tick in this process: no HTTP server, so no reason for a second process."""
    from service.errors import FatalError
    from service.pipeline.leader import Leadership, make_leader_lock
    from service.pipeline.scheduler import PipelineScheduler
    from service.pipeline.wiring import open_pipeline

    pipeline = open_pipeline(settings)  # FatalError (exit 1) when a GPU is required and did not start
    for mv in pipeline.bundled:
        log.info("registered the bundled %s model %s as production", mv.kind, mv.version)
    fatal: list[BaseException] = []
    from service.sources.registry import open_magnetogram_source

    truth = open_magnetogram_source(settings)  # None for SYNMAG_TRUTH_SOURCE=none
    leadership = Leadership(make_leader_lock(settings))
    scheduler = PipelineScheduler(pipeline.ctx, leadership, on_fatal=fatal.append, truth=truth)
    report = scheduler.tick()
    leadership.release()
    pipeline.close()
    log.info("one tick: leader=%s due=%d outcomes=%s error=%s", report.leader, report.due,
             [o.outcome for o in report.outcomes], report.error)
    if fatal:
        raise FatalError(str(fatal[0]))
    return 0 if report.error is None else 1


def _serve(settings: Any, host: str, port: int) -> int:
    from datetime import UTC, datetime

    import uvicorn

    from service.api.app import create_app
    from service.api.state import AppState
    from service.commands.pipeline_process import PipelineProcess
    from service.db import make_engine
    from service.db.migrate import upgrade
    from service.errors import FatalError, UsageError
    from service.storage import open_store

    engine = make_engine(settings)
    upgrade(settings, engine)  # before the API answers; the pipeline process finds it done
    state = AppState(pipeline="starting")
    fatal: list[str] = []
    server_box: list[Any] = []

    def on_fatal(message: str) -> None:
        fatal.append(message)
        log.error("fatal: %s", message)
        if server_box:
            server_box[0].should_exit = True

    pipeline = PipelineProcess(settings, state, on_fatal)
    app = create_app(settings, state, engine=engine, store=open_store(settings),
                     pipeline_metrics=pipeline.metrics)
    config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level.lower(),
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    server_box.append(server)
    # uvicorn catches SIGTERM/SIGINT while it runs, then re-raises them to the handlers it
    # found: with these, the re-raised signal lands here instead of killing the process
    # before the pipeline process has stopped and released the leader lock.
    stop_signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_signals.append(signum))
    log.info("synmag serve: API on http://%s:%d, database %s", host, port,
             engine.url.render_as_string(hide_password=True))
    pipeline.start()
    started = datetime.now(UTC)
    try:
        server.run()  # returns once asked to stop (SIGTERM, Ctrl-C) or on a fatal report
    finally:
        stopping = time.monotonic()
        log.info("stopping: waiting for the running minute to finish")
        code = pipeline.stop(timeout=max(30.0, settings.http_timeout_s * 2))
        engine.dispose()
        log.info("pipeline process exit code %s", code)
        log.info("stopped in %.1f s (up %.0f s)", time.monotonic() - stopping,
                 (datetime.now(UTC) - started).total_seconds())
    if fatal:
        raise FatalError(fatal[0])
    if not server.started:
        raise UsageError(f"could not serve HTTP on {host}:{port} (port in use?)")
    return 0
