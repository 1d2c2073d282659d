"""The ``synmag`` command line.

Each sub-command lives in its own module under ``service.commands`` and exposes
``configure(parser)`` (arguments) and ``main(args) -> int`` (exit status). This
file only wires them together; heavy imports happen inside each ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pydantic import ValidationError

from service import __version__
from service.errors import SynmagError, UsageError

# name -> (module under service.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "preprocess": ("preprocess", "GONG frames -> model-input FITS (what the model sees)"),
    "metrics": ("metrics", "score a magnetogram against a reference, in Gauss"),
    "process": ("process", "GONG frames -> products (FITS + PNG) through ONNX Runtime"),
    "models": ("models", "list registered model versions"),
    "products": ("products", "list stored products"),
    "reprocess": ("reprocess", "add a model version's products for past minutes, from the archived frames"),
    "serve": ("serve", "run the scheduler, pipeline and HTTP API"),
    "verify": ("verify", "score products against the real magnetogram of their minute, with persistence"),
    "replay": ("replay", "serve a folder of GONG frames over HTTP in the NSO layout"),
    "jsoc-standin": ("jsoc_standin", "serve dataset days as a JSOC (hmi.M_720s, _nrt) that drms can query"),
    "migrate": ("migrate", "apply database migrations"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synmag", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"synmag {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"service.commands.{module_name}")
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # One invocation is one start: settings are read from the environment anew and
    # validated once for it (``get_settings`` caches them for the rest of the command).
    from service.settings import get_settings

    get_settings.cache_clear()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not args.verbose:
        # Alembic narrates every plugin and migration at INFO: noise for a CLI user.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args._module.main(args) or 0)
    except UsageError as exc:
        print(f"synmag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SynmagError as exc:
        print(f"synmag {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # bad SYNMAG_* settings: say which, no traceback
        for err in exc.errors():
            where = "SYNMAG_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "settings"
            print(f"synmag {args.command}: invalid setting {where}: {err['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
