"""``synmag migrate``: bring the database schema up to date (idempotent)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", default="head", help="target Alembic revision (default: head)")


def main(args: argparse.Namespace) -> int:
    from service.db.engine import make_engine
    from service.db.migrate import current, upgrade
    from service.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings)
    try:
        upgrade(settings, engine, revision=args.revision)
        print(f"database at revision {current(engine)}")
    finally:
        engine.dispose()
    return 0
