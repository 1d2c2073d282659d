"""``synmag products``: stored products with their provenance, newest last.

``--json`` prints :func:`service.api.products.product_record` of each: the same fields
the feed API's product JSON is built from.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from service.errors import UsageError


def parse_time(text: str, option: str = "--since") -> datetime:
    """ISO 8601 time (``2026-11-21T12:03Z``, ``2026-11-21``); naive means UTC."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option}: not an ISO 8601 time: {text!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="T", help="only products observed at or after T (ISO 8601, UTC)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--limit", type=int, default=None, help="only the newest N")


def main(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    from service.api.products import product_record
    from service.db.engine import make_engine, session_scope
    from service.db.migrate import upgrade
    from service.db.models import Product
    from service.settings import get_settings

    since = parse_time(args.since) if args.since else None
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    settings = get_settings()
    engine = make_engine(settings)
    try:
        upgrade(settings, engine)
        query = select(Product).options(joinedload(Product.input_frame))
        if since is not None:
            query = query.where(Product.obs_time >= since)
        query = query.order_by(Product.obs_time.desc(), Product.id.desc())
        if args.limit:
            query = query.limit(args.limit)
        with session_scope(engine) as s:
            rows = [product_record(p) for p in reversed(s.scalars(query).all())]
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['obs_time']}  {r['site']}  {r['model_version']}  {r['prior_line']}  {r['fits_uri']}")
        print(f"{len(rows)} product(s)")
    return 0
