"""The per-frame loop shared by ``synmag preprocess`` and ``synmag process``.

A bad frame (rejected, unreadable, output already there) is reported on one line
with its reason and the loop goes on; the exit status says whether any failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from service.errors import FrameRejected


def for_each_frame(paths: Iterable[Path], work: Callable[[Path], str]) -> int:
    """Run ``work(path)`` on every frame, printing its result line or the reason it failed.

    Returns 0 when every frame succeeded, else 1.
    """
    failed = 0
    for path in paths:
        try:
            done = work(path)
        except FrameRejected as exc:
            print(f"{path}: rejected ({exc.reason}): {exc.detail}", file=sys.stderr)
        except FileExistsError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"{path}: cannot read or write: {exc.strerror or exc}", file=sys.stderr)
        except Exception as exc:  # a bug on one frame must not cost the others
            print(f"{path}: failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        else:
            print(f"{path} -> {done}")
            continue
        failed += 1
    return 1 if failed else 0
