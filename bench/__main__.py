"""Run every benchmark module in ``bench/`` (each exposes ``run() -> dict``) and print results.

``python -m bench [NAME ...]`` runs the named ones only. Each result dict is printed as
``name key=value ...``; a benchmark that states a goal prints ``ratio`` (measured / goal,
below 1 is better) beside its timings.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_")
    )
    failed = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            result = importlib.import_module(f"bench.{name}").run()
        except Exception as exc:  # a broken benchmark must not hide the others
            print(f"{name}: FAILED {type(exc).__name__}: {exc}")
            failed += 1
            continue
        result["bench_wall_s"] = round(time.perf_counter() - t0, 2)
        print(f"{name}: {json.dumps(result, default=str)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
