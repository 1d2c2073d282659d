"""``synmag jsoc-standin DIR --port P [--shift-years N] [--naxis N]``: a stand-in JSOC on loopback.

Serves a folder of dataset days (``*_hmi.webp``) as the series ``hmi.M_720s_nrt`` and
``hmi.M_720s`` in JSOC's protocol, so that drms (and ``SYNMAG_JSOC_URL``, ``synmag
verify --jsoc-url``, the dataset builder's ``--jsoc-url``) can query it: keyword queries
with JSOC's strings (QUALITY in hex, times in TAI) and level-1 raw segments (RICE,
CROTA2 about 180, no WCS). See :mod:`service.devtools.jsoc_standin`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.devtools.serving import serve_until_stopped
from service.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="folder of dataset days (*_hmi.webp)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=8082, help="port (0: any free port; default 8082)")
    parser.add_argument("--shift-years", type=int, default=0, metavar="N",
                        help="move every date by N whole years, keeping the day of year (e.g. 11: 2014 -> 2025)")
    parser.add_argument("--naxis", type=int, default=4096, metavar="N",
                        help="side of the level-1 images (default 4096 as JSOC; smaller keeps the sky, coarser)")


def main(args: Any) -> int:
    from service.devtools.jsoc_standin import JsocStandin, make_server

    try:
        standin = JsocStandin(args.source, shift_years=args.shift_years, naxis=args.naxis)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        server = make_server(standin, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    host, port = server.server_address[:2]
    times = standin.times()
    print(f"synmag jsoc-standin: serving {len(times)} records of {', '.join(standin.records)} "
          f"({times[0]:%Y-%m-%d} .. {times[-1]:%Y-%m-%d}) at http://{host}:{port}", flush=True)

    serve_until_stopped(server)
    print(f"synmag jsoc-standin: stopped after {sum(standin.requests.values())} requests "
          f"({dict(standin.requests)})", file=sys.stderr)
    return 0
