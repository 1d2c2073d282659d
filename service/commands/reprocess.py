"""``synmag reprocess --start T --end T [--model VERSION]``: backfill past minutes with a version.

For every minute in ``[start, end)`` that has a product, adds the product of
``--model`` (default: the production version) made from the same archived input
frame (:mod:`service.pipeline.reprocess`). Existing products are never replaced; run
it again and it adds nothing. One JSON line a minute, then a count of outcomes.
Exit status 1 if any minute failed (its archived input missing or damaged).
"""

from __future__ import annotations

import argparse
from collections import Counter

from service.commands.products import parse_time
from service.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, metavar="T", help="first observation minute (ISO 8601, UTC)")
    parser.add_argument("--end", required=True, metavar="T", help="end of the range, not included (ISO 8601, UTC)")
    parser.add_argument("--model", metavar="VERSION", default=None,
                        help="registry version or ONNX path (default: the production version)")


def main(args: argparse.Namespace) -> int:
    from service.pipeline.reprocess import reprocess
    from service.pipeline.wiring import open_pipeline
    from service.settings import get_settings

    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    if end <= start:
        raise UsageError(f"--end ({args.end}) must be after --start ({args.start})")
    settings = get_settings()
    if args.model is not None:
        settings = settings.model_copy(update={"model": args.model})
    pipeline = open_pipeline(settings)
    try:
        outcomes = reprocess(pipeline.ctx, start, end, on_outcome=lambda o: print(o.log_line(), flush=True))
    finally:
        pipeline.close()
    counts = Counter(o.outcome for o in outcomes)
    version = pipeline.runtime.version
    print(f"reprocessed {len(outcomes)} minutes with {version}: "
          + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing in range"))
    return 1 if counts.get("failed") else 0
