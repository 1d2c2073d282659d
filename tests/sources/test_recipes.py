"""The recipes of docs/ARCHITECTURE.md, followed: a new frame source, magnetogram source and metric.

Each is defined and registered here, in the test, and nothing else in the service is
changed: the toy network's frame becomes a product through one minute of the real
pipeline, and that product is verified against the toy magnetogram source with the toy
metric scored, stored and exported beside the built-in ones.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from sqlalchemy import select

from service import observability as obs
from service.db import InputFrame, Product, session_scope
from service.errors import FrameRejected
from service.pipeline.minute import process_minute
from service.pipeline.wiring import open_pipeline
from service.science import metric_table
from service.science.frame import HalphaFrame
from service.settings import Settings
from service.sources import registry
from service.sources.base import Download, FrameSource, RemoteFrame
from service.sources.magnetograms.base import Magnetogram, MagnetogramSource
from service.verification.verify import verify_product

T0 = datetime(2024, 5, 1, 12, 7, 9, tzinfo=UTC)


# --- recipe 1: a frame source -------------------------------------------------------------
class ToyNetwork(FrameSource):
    """A made-up H-alpha network: plain FITS frames, 1024 px, disk keys of its own."""

    name = "toy"
    archive: dict[str, bytes] = {}  # file name -> bytes: its "server"

    @classmethod
    def from_settings(cls, settings: Settings) -> ToyNetwork:
        return cls()

    def list_recent(self, now: datetime, since: datetime, deadline: float | None = None) -> list[RemoteFrame]:
        frames = [self.remote(name) for name in self.archive]
        return sorted((f for f in frames if f and since <= f.obs_time <= now), key=lambda f: f.obs_time)

    def download(self, frame: RemoteFrame, deadline: float | None = None) -> Download:
        data = self.archive[frame.name]
        return Download(frame, data, hashlib.sha256(data).hexdigest(), 0.0)

    def remote(self, name: str) -> RemoteFrame | None:
        stamp, _, site = name.removesuffix(".fits").partition("_")
        try:
            t = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None
        return RemoteFrame(self.name, name, f"toy://{name}", t, site)

    @classmethod
    def read(cls, data: bytes, name: str | None = None) -> HalphaFrame:
        try:
            with fits.open(io.BytesIO(data)) as hdul:
                header, image = hdul[0].header, hdul[0].data.astype(np.float32)
        except Exception as exc:
            raise FrameRejected("corrupt_fits", str(exc)) from exc
        return HalphaFrame(
            data=image, header=header, obs_time=Time(header["DATE-OBS"], scale="utc"), source=cls.name,
            site=header["STATION"], center_px=(header["DISKX"], header["DISKY"]), radius_px=header["DISKR"],
            radius_minmax_px=(header["DISKR"], header["DISKR"]), rsun_arcsec=950.0 * u.arcsec,
            p_angle=0 * u.deg, b0=0 * u.deg, l0=0 * u.deg, site_lat=30 * u.deg, site_lon=10 * u.deg,
            generation="toy-1", filename=name, expected_shape=(1024, 1024),
            quality={"sharpness": 0.01},
        )


def toy_frame(t: datetime, site: str = "T1") -> tuple[str, bytes]:
    from service.devtools.gong_writer import synthetic_disk

    image = synthetic_disk(1024, rng=3).astype(np.float32) * 10 + 50
    header = fits.Header({"DATE-OBS": t.strftime("%Y-%m-%dT%H:%M:%S"), "STATION": site,
                          "DISKX": 512.0, "DISKY": 512.0, "DISKR": 450.0})
    buf = io.BytesIO()
    fits.PrimaryHDU(image, header).writeto(buf)
    return f"{t:%Y%m%d%H%M%S}_{site}.fits", buf.getvalue()


# --- recipe 2: a magnetogram source ---------------------------------------------------------
class ToyMagnetograph(MagnetogramSource):
    """Truth already on the product grid: a bipole, whatever the time; the same bipole as history."""

    name = "toy-mag"

    @classmethod
    def from_settings(cls, settings: Settings) -> ToyMagnetograph:
        return cls()

    @staticmethod
    def bipole(t: datetime) -> Magnetogram:
        field = np.zeros((1024, 1024), np.float32)
        field[500:520, 480:500], field[500:520, 530:550] = 150.0, -150.0
        return Magnetogram(field, t, hashlib.sha256(field.tobytes()).hexdigest(), "toy-mag", in_model_frame=True)

    def nearest(self, obs_time: datetime, input_file: str | None = None) -> Magnetogram | None:
        return self.bipole(obs_time)

    def newest_before(self, t: datetime, min_age: timedelta, max_age: timedelta) -> Magnetogram | None:
        return self.bipole(t - min_age)


# --- recipe 3: a metric ----------------------------------------------------------------------
def mean_abs_error(pred: np.ndarray, truth: np.ndarray, pixels: np.ndarray, geometry: object) -> float:
    return float(np.mean(np.abs(pred[pixels] - truth[pixels])))


TOY_METRIC = metric_table.Metric("mae", "mean absolute error, full disk", "G", ".1f", live=True,
                                 higher_is_better=False, compute=mean_abs_error)


@pytest.fixture
def registered() -> Iterator[None]:
    registry.frame_source(ToyNetwork)
    registry.magnetogram_source(ToyMagnetograph)
    metric_table.register(TOY_METRIC)
    yield
    registry.FRAME_SOURCES.pop("toy")
    registry.MAGNETOGRAM_SOURCES.pop("toy-mag")
    metric_table.unregister("mae")


def test_a_new_frame_source_makes_a_product_and_a_new_metric_verifies_it(
    registered: None, tiny_onnx: Path, tmp_path: Path
) -> None:
    name, data = toy_frame(T0)
    ToyNetwork.archive = {name: data}
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/db.sqlite", store_url=f"file://{tmp_path}/store",
        frame_sources=["toy"], truth_source="toy-mag", model=str(tiny_onnx),
        model_cache_dir=tmp_path / "cache", bundled_model_dir=tmp_path / "none",
    )
    pipeline = open_pipeline(settings)
    try:
        out = process_minute(T0.replace(second=0), pipeline.ctx)
        assert out.outcome == "product", out.detail
        with session_scope(pipeline.ctx.sessions) as s:
            product = s.scalars(select(Product)).one()
            frame = s.get(InputFrame, product.input_frame_id)
            assert (product.source, product.site, frame.filename) == ("toy", "T1", name)
            assert "toy-T1" in product.fits_uri

        obs.init_metrics()  # the new metric's gauge exists before any verification
        truth = registry.open_magnetogram_source(settings)
        with session_scope(pipeline.ctx.sessions) as s:
            doc = verify_product(s, pipeline.ctx.store, s.scalars(select(Product)).one(), truth)
        assert doc["status"] == "scored"
        # the zero map's error is the truth's bipole (2 x 400 pixels of 150 G) spread over the disk
        assert doc["zero"]["mae"] == pytest.approx(150.0 * 800 / doc["model"]["n_pixels"])
        assert doc["model"]["mae"] > 0
        # yesterday's bipole rotated a day west misses today's: about twice the zero map's error
        assert doc["persistence"]["mae"] == pytest.approx(2 * doc["zero"]["mae"], rel=0.1)
        gauge = obs.verification_score.labels(metric="mae", reference="model")._value.get()
        assert gauge == pytest.approx(doc["model"]["mae"])
    finally:
        pipeline.close()


def test_unknown_source_names_are_refused_with_the_registered_ones(tmp_path: Path) -> None:
    from service.errors import UsageError

    with pytest.raises(UsageError, match="registered: gong"):
        registry.open_frame_sources(Settings(frame_sources=["nope"]))


def test_a_minute_lists_every_configured_source(registered: None, tiny_onnx: Path, tmp_path: Path) -> None:
    later = T0 + timedelta(minutes=1)
    ToyNetwork.archive = dict([toy_frame(later, "T1"), toy_frame(later + timedelta(seconds=20), "T2")])
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/db.sqlite", store_url=f"file://{tmp_path}/store",
        frame_sources=["toy"], model=str(tiny_onnx), model_cache_dir=tmp_path / "cache",
        bundled_model_dir=tmp_path / "none",
    )
    pipeline = open_pipeline(settings)
    try:
        out = process_minute(later.replace(second=0), pipeline.ctx)
        assert out.outcome == "product" and set(out.rejected) == {"20240501120829_T2.fits"}
    finally:
        pipeline.close()
