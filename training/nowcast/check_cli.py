"""The nowcast bar's procedure on val, through ``synmag process`` as a user runs it.

For every ``--every``-th val day: its H-alpha as a GONG frame (``devtools.gong_writer``);
all val days' HMI in one ``--prior-dir``, alternately as level-1 FITS (as JSOC exports them:
RICE, CROTA2 about 180, Mx/cm^2, T_REC in TAI) and level-1.5 maps; then ``synmag process``
with ``--prior-min-age 12``, ``--prior-min-age 72`` and without ``--prior-dir``, each product
scored in Gauss against the day's HMI beside persistence from the prior the product names
(``PRIOROBS``), by the same ``r_bin8`` and AR PPA(20 G) as the model card.

``python -m training.nowcast.check_cli --data-dir DATA --work DIR [--every 3]``. The files it
writes are derived from the data: keep ``--work`` outside the repository.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ValDay:
    """A val day with its time as an astropy Time."""

    time: Any
    halpha_path: Path
    hmi_path: Path


SETTINGS = (("min_age_12", ["--prior-min-age", "12"]), ("min_age_72", ["--prior-min-age", "72"]), ("no_prior", None))


def write_inputs(days: list, every: int, work: Path) -> tuple[list[Path], Path]:
    """GONG frames of the chosen days and the prior folder of all days' HMI."""
    from service.devtools.gong_writer import write_gong_frame
    from service.devtools.hmi_writer import (
        exported_fits_bytes,
        level1_geometry,
        level1_image,
        level1_keywords,
        level15_fits_bytes,
        t_rec_slot,
    )
    from service.science.dataset import read_halpha_u8, read_hmi_gauss

    frames_dir, prior_dir = work / "frames", work / "priors"
    frames_dir.mkdir(parents=True, exist_ok=True)
    prior_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for n, day in enumerate(days):
        when = day.time.to_datetime(timezone=UTC)
        target = prior_dir / f"hmi_{when:%Y%m%d_%H%M%S}.fits"
        if not target.exists():
            gauss = read_hmi_gauss(day.hmi_path)
            if n % 2:
                geom = level1_geometry(when, naxis=2048, seed=n)
                data = exported_fits_bytes(level1_image(gauss, geom), level1_keywords(geom, t_rec_slot(when)))
            else:
                data = level15_fits_bytes(gauss, when)
            target.write_bytes(data)
        if n % every == 0:
            existing = sorted(frames_dir.glob(f"{when:%Y%m%d}*"))
            frames.append(existing[0] if existing else
                          write_gong_frame(read_halpha_u8(day.halpha_path), day.time, "B", "hpln", frames_dir, rng=n))
    return frames, prior_dir


def score(products: Path, days: list) -> list[dict]:
    """r_bin8 and AR PPA(20 G) of each product and of persistence from its own prior."""
    from astropy.io import fits

    from service.science import preprocess
    from service.science.dataset import read_hmi_gauss
    from service.science.prior import rotate_prior
    from service.science.regions import detect_regions
    from training.nowcast.cache import GEOMETRY
    from training.nowcast.evaluate import lean_scores

    by_date = {d.time.to_datetime(timezone=UTC).strftime("%Y%m%d"): d for d in days}
    disk = preprocess.model_disk_mask()
    rows = []
    for path in sorted(products.glob("*.fits")):
        with fits.open(path) as hdul:
            header, data = hdul[0].header, hdul[0].data.astype(np.float32)
        day = by_date[path.name[:8]]
        truth = np.where(disk, read_hmi_gauss(day.hmi_path), np.nan).astype(np.float32)
        ar = np.zeros_like(disk)
        for reg in detect_regions(np.nan_to_num(truth), disk):
            ar[reg.slice_y, reg.slice_x] = True
        row = {"day": day.time.isot, "kind": header["MODKIND"], **lean_scores(data, truth, disk, ar)}
        if "PRIOROBS" in header:
            prior_t = datetime.fromisoformat(header["PRIOROBS"]).astimezone(UTC)
            prior_day = min(days, key=lambda d: abs(d.time.to_datetime(timezone=UTC) - prior_t))
            pg, _ = rotate_prior(read_hmi_gauss(prior_day.hmi_path), prior_day.time, day.time, GEOMETRY)
            pers = lean_scores(np.nan_to_num(pg), truth, disk, ar)
            row.update(prior_age_h=float(header["PRIORAGE"]), pers_r_bin8=pers["r_bin8"], pers_ar_ppa20=pers["ar_ppa20"])
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """Means over all products, and over those with a prior beside their persistence (same rows)."""
    out: dict[str, Any] = {"n": len(rows), "kinds": {k: sum(r["kind"] == k for r in rows) for k in ("nowcast", "halpha")}}
    for key in ("r_bin8", "ar_ppa20"):
        out[key] = float(np.nanmean([r[key] for r in rows]))
    with_prior = [r for r in rows if "prior_age_h" in r]
    if with_prior:
        out["with_prior"] = {key: float(np.nanmean([r[key] for r in with_prior]))
                             for key in ("r_bin8", "ar_ppa20", "pers_r_bin8", "pers_ar_ppa20", "prior_age_h")}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--every", type=int, default=3)
    a = p.parse_args(argv)

    from service.cli import main as synmag
    from training.data import list_webp_days

    days = [ValDay(_time(d.time), d.halpha_path, d.hmi_path) for d in list_webp_days(a.data_dir / "val")]
    frames, prior_dir = write_inputs(days, a.every, a.work)
    results = {}
    for name, extra in SETTINGS:
        out = a.work / f"out_{name}"
        if not any(out.glob("*.fits")):
            args = ["process", *map(str, frames), "--out", str(out)]
            if extra is not None:
                args += ["--prior-dir", str(prior_dir), *extra]
            synmag(args)
        results[name] = summary(score(out, days))
        print(name, json.dumps(results[name]), flush=True)
    (a.work / "check_cli.json").write_text(json.dumps(results, indent=1))


def _time(iso: str):
    from astropy.time import Time

    return Time(iso, scale="utc")


if __name__ == "__main__":
    main()
