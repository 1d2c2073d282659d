"""Run a stand-in's HTTP server in the foreground until SIGTERM or Ctrl-C (``synmag replay``,
``synmag jsoc-standin``)."""

from __future__ import annotations

import signal
import threading
from http.server import HTTPServer


def serve_until_stopped(server: HTTPServer) -> None:
    """``server.serve_forever()``; SIGTERM and Ctrl-C end it, and the socket is closed either way."""

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return: never call it on the serving thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
