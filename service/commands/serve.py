"""``synmag serve``: the scheduler and pipeline in a background thread, the HTTP API in front.

At start: database migrations, the bundled model registered when the registry
has no production version, the inference session loaded (refusing to start
when ``SYNMAG_REQUIRE_GPU`` is set and no GPU provider is active). Then the
scheduler ticks every ``SYNMAG_TICK_SECONDS`` (only on the replica holding the
leader lock) while uvicorn serves the API on ``SYNMAG_API_HOST:SYNMAG_API_PORT``.
SIGTERM or Ctrl-C stops the HTTP server, lets the running minute finish and
releases the lock. ``--once`` runs a single tick and exits (no HTTP server).

Each minute's outcome is logged as one JSON line (logger ``synmag.minute``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import Any

log = logging.getLogger("synmag.serve")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="run one scheduler tick and exit")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default SYNMAG_API_PORT)")
    parser.add_argument("--host", default=None, help="HTTP address (default SYNMAG_API_HOST)")


def main(args: Any) -> int:
    from datetime import UTC, datetime

    from service import observability as obs
    from service.api.app import create_app
    from service.api.state import AppState
    from service.errors import FatalError, UsageError
    from service.pipeline.leader import Leadership, make_leader_lock
    from service.pipeline.scheduler import PipelineScheduler
    from service.pipeline.wiring import open_pipeline
    from service.settings import load_settings

    try:
        settings = load_settings()
    except Exception as exc:  # pydantic ValidationError: say which variable is wrong
        raise UsageError(f"invalid settings: {exc}") from exc
    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    obs.init_metrics()
    # One line per minute comes from synmag.minute; per-request and per-job chatter is noise.
    # (a tick longer than the period is skipped by design: coalesce, max_instances=1)
    for noisy, level in (("httpx", logging.WARNING), ("apscheduler", logging.ERROR)):
        logging.getLogger(noisy).setLevel(level)

    state = AppState()
    pipeline = open_pipeline(  # FatalError (exit 1) when a GPU is required and did not start
        settings, on_model_change=lambda loaded: state.set_model(loaded.version, loaded.providers)
    )
    if pipeline.bundled is not None:
        log.info("registered the bundled model %s as production", pipeline.bundled.version)
    ctx, engine, runtime = pipeline.ctx, pipeline.engine, pipeline.runtime
    leadership = Leadership(make_leader_lock(settings))
    fatal: list[BaseException] = []
    server_box: list[Any] = []

    def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)
        if server_box:
            server_box[0].should_exit = True

    from service.sources.registry import open_magnetogram_source

    truth = open_magnetogram_source(settings)  # None for SYNMAG_TRUTH_SOURCE=none
    scheduler = PipelineScheduler(ctx, leadership, on_fatal=on_fatal, state=state, truth=truth)
    log.info(
        "synmag serve: sources %s, database %s, store %s, model %s, providers asked %s",
        ", ".join(ctx.sources), engine.url.render_as_string(hide_password=True), settings.store_url,
        runtime.version or "none", ",".join(settings.providers),
    )
    if args.once:
        report = scheduler.tick()
        leadership.release()
        pipeline.close()
        log.info("one tick: leader=%s due=%d outcomes=%s error=%s", report.leader, report.due,
                 [o.outcome for o in report.outcomes], report.error)
        if fatal:
            raise FatalError(str(fatal[0]))
        return 0 if report.error is None else 1

    import uvicorn

    app = create_app(settings, state, engine=engine, store=ctx.store)
    config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level.lower(),
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    server_box.append(server)
    # uvicorn catches SIGTERM/SIGINT while it runs, then re-raises them to the handlers it
    # found: with these, the re-raised signal lands here instead of killing the process
    # before the scheduler has stopped and the leader lock is released.
    stop_signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_signals.append(signum))
    scheduler.start()
    started = datetime.now(UTC)
    try:
        server.run()  # returns once asked to stop (SIGTERM, Ctrl-C) or on a fatal tick
    finally:
        stopping = time.monotonic()
        log.info("stopping: waiting for the running minute to finish")
        ctx.abort()  # a tick sitting out upstream retries gives up now
        stopper = threading.Thread(target=scheduler.stop, kwargs={"wait": True}, daemon=True)
        stopper.start()
        stopper.join(timeout=max(30.0, settings.http_timeout_s * 2))
        pipeline.close()
        log.info("stopped in %.1f s (up %.0f s)", time.monotonic() - stopping,
                 (datetime.now(UTC) - started).total_seconds())
    if fatal:
        raise FatalError(str(fatal[0]))
    if not server.started:
        raise UsageError(f"could not serve HTTP on {host}:{port} (port in use?)")
    return 0
