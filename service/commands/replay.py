"""``synmag replay DIR --port P``: a stand-in NSO GONG archive on loopback.

Serves a folder of GONG ``.fits.fz`` frames, or a dataset split of
``*_halpha.webp`` images, in the NSO layout, re-stamped to the current minute
(see :mod:`service.devtools.replay`); with ``--dated``, each frame at its own date
moved by ``--shift-years`` (for the dataset builder: pair it with ``synmag
jsoc-standin --shift-years`` of the same N). Point ``SYNMAG_GONG_BASE_URL`` at the
printed URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.devtools.serving import serve_until_stopped
from service.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="folder of *.fits.fz frames or *_halpha.webp images")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=8081, help="port (0: any free port; default 8081)")
    parser.add_argument("--cadence", type=float, default=60.0, metavar="S",
                        help="real seconds per replayed observation minute (default 60: real time)")
    parser.add_argument("--publish-delay", type=float, default=30.0, metavar="S",
                        help="seconds after observation before a frame is listed (default 30)")
    parser.add_argument("--rewind", type=int, default=0, metavar="MIN",
                        help="start the replay clock this many minutes in the past (default 0)")
    parser.add_argument("--backlog", type=int, default=0, metavar="N",
                        help="minutes published at once at start, besides the first (default 0)")
    parser.add_argument("--sites", default="BL",
                        help="site letters each dataset image is published as (default BL)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="publish at most N minutes, then nothing new (default: no limit)")
    parser.add_argument("--dated", action="store_true",
                        help="no replay clock: every frame at its own date (+ --shift-years), all listed at once")
    parser.add_argument("--shift-years", type=int, default=0, metavar="N",
                        help="with --dated: move every date by N whole years, keeping the day of year "
                             "(11: 2014 -> 2025, cycle 25; the truth then takes cycle 25's polarity)")
    parser.add_argument("--fail-every", type=int, default=0, metavar="N", help="HTTP 500 on every Nth download")
    parser.add_argument("--truncate-every", type=int, default=0, metavar="M",
                        help="drop the connection halfway through every Mth download")
    parser.add_argument("--stall-every", type=int, default=0, metavar="K",
                        help="answer every Kth download only after --stall-s seconds")
    parser.add_argument("--stall-s", type=float, default=60.0, metavar="S", help="stall length (default 60)")
    parser.add_argument("--short-file-every", type=int, default=0, metavar="J",
                        help="every Jth published frame is truncated at the source")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S",
                        help="answer every request S seconds late (a slow upstream)")


def main(args: Any) -> int:
    from service.devtools.replay import DatedArchive, Faults, ReplayArchive, make_server

    for name in ("fail_every", "truncate_every", "stall_every", "short_file_every", "backlog", "rewind"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
    if args.cadence <= 0:
        raise UsageError("--cadence must be > 0")
    if args.shift_years and not args.dated:
        raise UsageError("--shift-years needs --dated")
    faults = Faults(
        fail_every=args.fail_every, truncate_every=args.truncate_every,
        stall_every=args.stall_every, stall_s=args.stall_s,
        short_file_every=args.short_file_every, delay_s=args.delay,
    )
    try:
        archive = DatedArchive(args.source, shift_years=args.shift_years, publish_delay_s=args.publish_delay,
                               faults=faults, sites=args.sites) if args.dated else ReplayArchive(
            args.source,
            cadence_s=args.cadence,
            publish_delay_s=args.publish_delay,
            rewind_minutes=args.rewind,
            backlog=args.backlog,
            sites=args.sites,
            limit=args.limit,
            faults=faults,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        server = make_server(archive, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    host, port = server.server_address[:2]
    sites = ", ".join(f"{k} ({len(v)} frames)" for k, v in archive.queues.items())
    print(f"synmag replay: serving {args.source} at http://{host}:{port} (sites {sites})", flush=True)

    serve_until_stopped(server)
    print(f"synmag replay: stopped after {archive.downloads} downloads, faults {archive.faults_injected}",
          file=sys.stderr)
    return 0
