"""``synmag verify PRODUCT.fits... [--truth jsoc|dir|replay] [--json]``: products against real HMI.

What the service's verification does, for operators: each product is scored against
the real magnetogram of its minute, with the zero map and one-day persistence (the
newest magnetogram at least 24 h older, rotated differentially to the product's time;
for a nowcast, the persistence of its own prior, ``PRIOROBS``) beside it, and printed as
the metric table says (``service.science.metric_table``); a product with ``SIGMA`` and
``CONFIDENCE`` layers gets a line of calibration figures.
The truth source is ``--truth`` (default ``SYNMAG_TRUTH_SOURCE``, else ``jsoc``) with
its location from ``--jsoc-url`` / ``--truth-dir`` / ``--truth-url`` or the settings.
A product without truth gets one line with the reason; the exit status is 1 when any
product was not scored.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("products", nargs="+", type=Path, metavar="PRODUCT", help="synmag product FITS files")
    parser.add_argument("--truth", default=None,
                        help="magnetogram source: jsoc, dir, replay (default SYNMAG_TRUTH_SOURCE, else jsoc)")
    parser.add_argument("--jsoc-url", default=None, help="JSOC root for --truth jsoc (default SYNMAG_JSOC_URL)")
    parser.add_argument("--truth-dir", type=Path, default=None, help="folder for --truth dir (default SYNMAG_TRUTH_DIR)")
    parser.add_argument("--truth-url", default=None,
                        help="replay archive root for --truth replay (default SYNMAG_TRUTH_URL)")
    parser.add_argument("--json", action="store_true", help="print one JSON document per product, as a list")


def _source(args: argparse.Namespace) -> Any:
    from service.settings import load_settings
    from service.sources.registry import open_magnetogram_source

    overrides = {k: v for k, v in (("jsoc_url", args.jsoc_url), ("truth_dir", args.truth_dir),
                                   ("truth_url", args.truth_url)) if v is not None}
    settings = load_settings(**overrides)
    name = args.truth or (settings.truth_source if settings.truth_source != "none" else "jsoc")
    if name == "none":
        raise UsageError("--truth none verifies nothing: name a magnetogram source")
    return open_magnetogram_source(settings, name)


def read_product_file(path: Path) -> tuple[Any, datetime, Any]:
    """(``ProductMap``, observation time, ``PriorRef`` or None) of a product file."""
    from service.verification.verify import PriorRef, read_product_map

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        m = read_product_map(path.read_bytes())
        obs_time = datetime.fromisoformat(str(m.header["DATE-OBS"])).replace(tzinfo=UTC)
        prior = PriorRef.of_header(m.header)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a synmag product ({type(exc).__name__}: {exc})") from exc
    return m, obs_time, prior


def table(doc: dict[str, Any]) -> str:
    """The metric table's metrics, one row each: model, zero map, persistence."""
    from service.science.metric_table import METRICS
    from service.vocabulary import Reference

    refs = (Reference.MODEL, Reference.ZERO, Reference.PERSISTENCE)
    lines = [f"{'metric':<48}" + "".join(f"{r:>13}" for r in refs)]
    for metric in METRICS:
        label = metric.label + (f" ({metric.unit})" if metric.unit else "")
        cells = [metric.format(metric.read(doc[r])) if doc.get(r) else "n/a" for r in refs]
        lines.append(f"{label:<48}" + "".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def describe(doc: dict[str, Any]) -> str:
    """One line: which truth and which persistence the scores are against."""
    truth = doc["truth"]
    line = f"truth {truth['origin']} {truth['obs_time']} ({truth['offset_s']:+.0f} s)"
    ps = doc["persistence_source"]
    if "missing" in ps:
        return line + f"; persistence: none ({ps['missing']})"
    of = "of its prior " if ps.get("of") == "prior" else ""
    return line + f"; persistence {of}{ps['origin']} {ps['obs_time']} ({ps['age_h']:.1f} h older)"


def calibration_line(cal: dict[str, Any]) -> str:
    """The calibration figures of the SIGMA/CONFIDENCE layers, one line."""
    def f(key: str) -> str:
        return "n/a" if cal.get(key) is None else f"{cal[key]:.3f}"

    return (f"calibration (|B| > {cal['strong_g']:g} G, {cal['n']} px): ECE {f('ece')}, AUROC {f('auroc')}, "
            f"within +-1 sigma {f('coverage')}, sigma decile MAE ratio {f('decile_ratio')}")


def main(args: argparse.Namespace) -> int:
    from service.errors import FatalError, RetryableError
    from service.verification.verify import assess

    source = _source(args)
    docs, failed = [], 0
    try:
        for path in args.products:
            try:
                m, obs_time, prior = read_product_file(path)
                doc = assess(m.gauss, m.geometry, obs_time, m.header.get("INFILE"), source, prior=prior,
                             sigma=m.sigma, confidence=m.confidence)
            except (UsageError, RetryableError, FatalError) as exc:
                doc = {"status": "failed", "reason": str(exc)}
            doc = {"product": str(path), **doc}
            docs.append(doc)
            failed += doc["status"] != "scored"
            if args.json:
                continue
            if doc["status"] != "scored":
                print(f"{path}: {doc['status']}: {doc['reason']}")
                continue
            print(f"{path}: {obs_time.isoformat()}; {describe(doc)}")
            print(table(doc))
            if doc.get("calibration"):
                print(calibration_line(doc["calibration"]))
    finally:
        source.close()
    if args.json:
        print(json.dumps(docs, indent=2, allow_nan=False))
    return 1 if failed else 0
