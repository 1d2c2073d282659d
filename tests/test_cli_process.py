"""``synmag process`` end to end on a real-val-derived frame with a tiny untrained model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from service.cli import main as synmag
from service.science.gong_writer import write_gong_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def processed(real_frame_paths: dict[str, Path], tiny_onnx: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("products")
    frame = real_frame_paths["hpln"]
    assert synmag(["process", str(frame), "--out", str(out), "--model", str(tiny_onnx)]) == 0
    return out


def test_product_fits(processed: Path, real_frame_paths: dict[str, Path]) -> None:
    (path,) = processed.glob("*.fits")
    with fits.open(path) as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert data.shape == (1024, 1024)
    assert header["BUNIT"] == "Gauss"
    assert np.isnan(data[0, 0]) and np.isnan(data[-1, -1])
    on_disk = data[512 - 300 : 512 + 300, 512 - 300 : 512 + 300]
    assert np.isfinite(on_disk).all() and np.abs(on_disk).max() <= 200.0
    frame = real_frame_paths["hpln"]
    assert header["INSHA256"] == hashlib.sha256(frame.read_bytes()).hexdigest()
    assert header["INFILE"] == frame.name
    assert header["MODELVER"] == "tiny-test"
    assert (processed / path.name.replace(".fits", ".png")).is_file()


def test_wcs_centre_on_disk_centre(processed: Path) -> None:
    import sunpy.map
    from sunpy.coordinates import frames

    (path,) = processed.glob("*.fits")
    smap = sunpy.map.Map(path)
    assert isinstance(smap.coordinate_frame, frames.Helioprojective)
    data = np.nan_to_num(np.isfinite(smap.data).astype(float))
    rows, cols = np.nonzero(data)
    cy, cx = rows.mean(), cols.mean()  # centroid of the finite (on-disk) pixels
    centre = smap.pixel_to_world(cx * u.pix, cy * u.pix)
    assert abs(centre.Tx.to_value(u.arcsec)) < 5 and abs(centre.Ty.to_value(u.arcsec)) < 5


def test_refuses_model_for_other_preprocess_version(
    real_frame_paths: dict[str, Path], tiny_onnx_factory, tmp_path: Path, capsys
) -> None:
    other = tiny_onnx_factory(preprocess_version="0-other")
    status = synmag(["process", str(real_frame_paths["gongx"]), "--out", str(tmp_path), "--model", str(other)])
    err = capsys.readouterr().err
    assert status == 1
    assert "preprocessing version '0-other'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_bad_frames_reported_others_processed(
    real_frame_paths: dict[str, Path], tiny_onnx: Path, tmp_path: Path, val_pair, capsys
) -> None:
    from service.science.dataset import read_halpha_u8

    good = real_frame_paths["gongx"]
    truncated = tmp_path / "20140523000034Bh.fits.fz"
    truncated.write_bytes(good.read_bytes()[:50_000])
    corrupt = tmp_path / "20140523000134Bh.fits.fz"
    corrupt.write_bytes(b"SIMPLE  =" + b"\0" * 3000)
    eclipse = write_gong_frame(
        read_halpha_u8(val_pair[0]), "2014-05-23T00:02:34", "B", "gongx", tmp_path,
        header_overrides={"ECLIPSE": 1}, rng=3,
    )
    out = tmp_path / "out"
    argv = ["process", str(truncated), str(corrupt), str(eclipse), str(good), "--out", str(out), "--model", str(tiny_onnx)]
    status = synmag(argv)
    err = capsys.readouterr().err
    assert status == 1
    assert "rejected (truncated)" in err and "rejected (corrupt_fits)" in err and "rejected (eclipse)" in err
    assert "Traceback" not in err
    assert len(list(out.glob("*.fits"))) == 1


def test_run_frame_in_memory(real_frame_paths: dict[str, Path], tiny_onnx: Path) -> None:
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import STAGES, run_frame

    frame = real_frame_paths["gongx"]
    result = run_frame(frame.read_bytes(), OnnxGenerator(tiny_onnx), filename=frame.name)
    assert set(result.timings) == set(STAGES) and all(t >= 0 for t in result.timings.values())
    assert result.fits_bytes.startswith(b"SIMPLE  =") and result.png_bytes.startswith(b"\x89PNG")
    assert result.input_sha256 == hashlib.sha256(frame.read_bytes()).hexdigest()
    assert result.provenance["preprocess_version"] and result.site == "BB"
    assert result.fits_path is None and result.basename.startswith(frame.name.split(".")[0])
