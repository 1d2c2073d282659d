"""``synmag models``: registered model versions, their status and val metrics.

``--json`` prints a list of objects (``version``, ``sha256``, ``status``,
``created_at``, ``metrics`` with ``model`` and ``baselines.zero`` /
``baselines.persistence``, ...). ``--gate``, ``--promote`` and ``--rollback``
drive the registry by hand.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--gate", metavar="VERSION", help="run the promotion gate on a version")
    action.add_argument("--promote", metavar="VERSION", help="promote a version (gate first)")
    action.add_argument("--rollback", action="store_true", help="put the previous production back")
    parser.add_argument("--force", action="store_true", help="with --promote: skip the gate")


def _table(rows: list[dict[str, Any]]) -> str:
    """One line a version: status and the gate's metrics (the metric table's) beside the baselines."""
    from service.science.metric_table import gate_metrics

    metrics_shown = gate_metrics()
    header = ["version", "status", "created_at", *(f"{m.name} model/zero/pers" for m in metrics_shown)]
    lines = [header]
    for row in rows:
        metrics = row["metrics"] or {}
        baselines = metrics.get("baselines") or {}
        blocks = [metrics.get("model") or {}, baselines.get("zero") or {}, baselines.get("persistence") or {}]
        cells = [row["version"], row["status"], row["created_at"]]
        for metric in metrics_shown:
            cells.append("/".join(metric.format(metric.read(b)).replace("n/a", "-") for b in blocks))
        lines.append(cells)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


def main(args: argparse.Namespace) -> int:
    from service.registry import Registry, model_to_dict
    from service.settings import get_settings

    registry = Registry(get_settings())  # migrates first
    try:
        if args.gate:
            result = registry.gate(args.gate)
            print(json.dumps(result.as_dict(), indent=1) if args.json else
                  ("passed" if result.passed else "failed: " + "; ".join(result.reasons)))
            return 0 if result.passed else 1
        if args.promote:
            mv = registry.promote(args.promote, force=args.force)
            print(f"{mv.version} is production")
            return 0
        if args.rollback:
            mv = registry.rollback()
            print(f"{mv.version} is production again")
            return 0
        rows = [model_to_dict(mv) for mv in registry.list()]
        print(json.dumps(rows, indent=1) if args.json else _table(rows))
        return 0
    finally:
        registry.engine.dispose()
