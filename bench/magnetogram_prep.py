"""A JSOC level-1 magnetogram (4096x4096, RICE, CROTA2 ~180) into the model frame.

What one new HMI record costs the service: decompress the raw segment, then
``service.verification.prep.to_model_frame`` (WCS, anti-aliased zoom and rotation of
the field and of its coverage). It happens once per record (every 12 min for the NRT
series): verification's truth and persistence and the nowcast's prior reuse it. A
synthetic field (no data needed). Goal: decompress + to_model_frame < 5 s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

GOAL_S = 5.0


def run() -> dict[str, Any]:
    from scipy import ndimage

    from service.devtools.hmi_writer import (
        level1_geometry,
        level1_image,
        level1_keywords,
        raw_segment_bytes,
        t_rec_slot,
    )
    from service.science.preprocess import model_disk_mask
    from service.sources.magnetograms.base import Magnetogram
    from service.sources.magnetograms.files import read_image_hdu
    from service.sources.magnetograms.jsoc import header_from_record
    from service.verification import prep

    t = datetime(2025, 3, 19, 0, 0, 54, tzinfo=UTC)
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (1024, 1024)), 1.5).astype(np.float32) * 60.0
    field[~model_disk_mask()] = np.nan
    geom = level1_geometry(t, naxis=4096)
    t0 = time.perf_counter()
    image = level1_image(field, geom)
    segment = raw_segment_bytes(image)
    t_make = time.perf_counter() - t0

    t0 = time.perf_counter()
    data, _ = read_image_hdu(segment)
    t_read = time.perf_counter() - t0
    header = header_from_record(level1_keywords(geom, t_rec_slot(t)))
    m = Magnetogram(data, t, "bench", "hmi.M_720s_nrt", header=header)
    prep._cache.clear()
    t0 = time.perf_counter()
    prep.to_model_frame(m)
    t_frame = time.perf_counter() - t0
    t0 = time.perf_counter()
    prep.to_model_frame(m)  # the same record again: kept
    t_again = time.perf_counter() - t0
    return {
        "segment_mb": round(len(segment) / 1e6, 1),
        "standin_make_s": round(t_make, 2),
        "decompress_s": round(t_read, 2),
        "to_model_frame_s": round(t_frame, 2),
        "to_model_frame_again_s": round(t_again, 4),
        "ratio": round((t_read + t_frame) / GOAL_S, 2),
    }
