"""A real feed for API tests: SQLite + file store with real products, served on loopback.

Not a plugin: the API, viewer, Fido and Prometheus tests import what they need.
Products are real files made by ``service.science.product`` (FITS in Gauss with
a helioprojective WCS, PNG quick-look with a colorbar) from a smooth synthetic
field; each has a real-layout GONG input frame (``gong_writer``) in the store.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

FEED_START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FEED_STEP = timedelta(minutes=10)
MODEL_VERSION = "feedtest-1"


@dataclass
class Feed:
    settings: object
    product_ids: list[int]
    obs_times: list[datetime]


def synthetic_field(seed: int, geometry) -> np.ndarray:
    """A bipolar smooth field in Gauss (model frame, NaN off the disk)."""
    rng = np.random.default_rng(seed)
    size = geometry.size
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((size, size), np.float32)
    for _ in range(3):
        cx, cy = rng.uniform(300, 724, 2)
        sep = rng.uniform(15, 40)
        for sign in (1, -1):
            field += sign * 180 * np.exp(-((x - cx - sign * sep) ** 2 + (y - cy) ** 2) / (2 * 12.0**2))
    field = np.clip(field + rng.normal(0, 5, field.shape).astype(np.float32), -200, 200)
    field[~geometry.mask()] = np.nan
    return field


def confidence_ramp(geometry) -> np.ndarray:
    """A CONFIDENCE layer rising from 0.5 at the east limb to 1.0 at the west (NaN off the disk)."""
    x = np.arange(geometry.size, dtype=np.float32)
    ramp = np.broadcast_to(np.clip(0.5 + 0.5 * (x - 62) / 900, 0.5, 1.0), (geometry.size, geometry.size))
    return np.where(geometry.mask(), ramp, np.nan).astype(np.float32)


def populate(settings, n: int = 6, start: datetime = FEED_START, step: timedelta = FEED_STEP,
             with_input: bool = True, prior_age_h: float | None = None, layers: bool = False) -> Feed:
    """Migrate the database of ``settings`` and store ``n`` products ``step`` apart.

    ``prior_age_h``: nowcast products made from a prior this old (``hmi.M_720s_nrt``), else
    H-alpha-only products (model kind ``halpha``, no prior source configured).
    ``layers``: the FITS get SIGMA (|B| / 4 + 5 G) and CONFIDENCE (:func:`confidence_ramp`).
    """
    from astropy.time import Time

    from service.db import InputFrame, ModelVersion, Product, make_engine, session_scope
    from service.db.migrate import upgrade
    from service.devtools.gong_writer import gong_filename, synthetic_disk, write_gong_frame
    from service.science.cycles import cycle_of, polarity_sign
    from service.science.preprocess import PREPROCESS_VERSION, ModelGeometry
    from service.science.product import product_fits_bytes, quicklook_png_bytes
    from service.storage import open_store, product_key, raw_key, sha256_hex

    engine = make_engine(settings)
    upgrade(settings, engine)
    store = open_store(settings)
    model_sha = "ab" * 32
    ids, times = [], []
    raw = write_gong_frame(synthetic_disk(1024, rng=7), Time(start), "L", rng=7) if with_input else None
    with session_scope(engine) as s:
        if s.get(ModelVersion, MODEL_VERSION) is None:
            s.add(ModelVersion(version=MODEL_VERSION, sha256=model_sha, onnx_uri="file:///nowhere.onnx",
                               metrics={"val": {"psnr": 30.0}}, lineage={"test": True},
                               preprocess_version=PREPROCESS_VERSION, status="production"))
    for i in range(n):
        t = start + i * step
        geometry = ModelGeometry.for_time(Time(t))
        gauss = synthetic_field(i, geometry)
        filename = gong_filename(Time(t), "L")
        provenance = {"input_file": filename, "input_sha256": "cd" * 32, "site": "LE",
                      "model_version": MODEL_VERSION, "model_sha256": model_sha,
                      "preprocess_version": PREPROCESS_VERSION, "software_version": "test",
                      # a cycle-24 model on frames of cycle 25, as the feed runs today
                      "model_cycle": 24, "frame_cycle": cycle_of(t), "polarity_sign": polarity_sign(t, 24)}
        kind = "nowcast" if prior_age_h is not None else "halpha"
        prior_t = t - timedelta(hours=prior_age_h) if prior_age_h is not None else None
        prior = {"prior_obs": prior_t.isoformat() if prior_t else None, "prior_age_h": prior_age_h,
                 "prior_source": "hmi.M_720s_nrt" if prior_t else None, "prior_sha256": "ef" * 32 if prior_t else None,
                 "prior_note": None if prior_t else "no prior source configured (SYNMAG_PRIOR_SOURCE=none)"}
        provenance.update(model_kind=kind, **prior)
        sigma = np.abs(gauss) / 4 + 5 if layers else None
        fits_bytes = product_fits_bytes(gauss, geometry, provenance, sigma=sigma,
                                        confidence=confidence_ramp(geometry) if layers else None)
        png_bytes = quicklook_png_bytes(gauss, title=f"synmag {t:%Y-%m-%d %H:%M} UTC", dpi=40)
        fits_uri = store.put(product_key(t, "gong", "LE", MODEL_VERSION, "fits"), fits_bytes, "application/fits")
        png_uri = store.put(product_key(t, "gong", "LE", MODEL_VERSION, "png"), png_bytes, "image/png")
        raw_uri = store.put(raw_key(t, "gong", filename), raw) if raw is not None else None
        with session_scope(engine) as s:
            frame = InputFrame(source="gong", filename=filename, url=f"https://gong2.nso.edu/{filename}", site="LE",
                               obs_time=t, obs_minute=t, sha256=sha256_hex(raw or b""),
                               size_bytes=len(raw or b""), raw_uri=raw_uri, header_generation="gongx",
                               quality={"accepted": True, "score": 0.9}, accepted=True)
            s.add(frame)
            s.flush()
            product = Product(source="gong", input_frame_id=frame.id, obs_time=t, obs_minute=t, site="LE",
                              model_version=MODEL_VERSION, preprocess_version=PREPROCESS_VERSION,
                              polarity_sign=provenance["polarity_sign"], model_kind=kind, prior_obs=prior_t,
                              prior_age_h=prior_age_h, prior_source=prior["prior_source"],
                              prior_sha256=prior["prior_sha256"], prior_note=prior["prior_note"],
                              fits_uri=fits_uri, png_uri=png_uri, fits_sha256=sha256_hex(fits_bytes),
                              png_sha256=sha256_hex(png_bytes),
                              quality={"accepted": True, "reasons": [], "score": 0.9},
                              timings={"inference": 1.0})
            s.add(product)
            s.flush()
            ids.append(product.id)
            times.append(t)
    engine.dispose()
    return Feed(settings=settings, product_ids=ids, obs_times=times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(app, timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a loopback port; yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def make_settings(tmp: Path, **overrides):
    from service.settings import Settings

    return Settings(database_url=f"sqlite:///{tmp / 'synmag.db'}", store_url=f"file://{tmp / 'store'}",
                    **overrides)
