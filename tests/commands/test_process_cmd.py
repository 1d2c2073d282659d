"""``synmag process`` end to end on a real-val-derived frame with a tiny untrained model."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from service.cli import main as synmag
from service.devtools.gong_writer import write_gong_frame

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
    bogus_unit = write_gong_frame(  # the audit's reproduction: it raised out of the reader
        read_halpha_u8(val_pair[0]), "2014-05-23T00:03:34", "B", "hpln", tmp_path,
        header_overrides={"CUNIT1": "bogus"}, rng=4,
    )
    out = tmp_path / "out"
    argv = ["process", str(truncated), str(corrupt), str(eclipse), str(bogus_unit), str(good),
            "--out", str(out), "--model", str(tiny_onnx)]
    status = synmag(argv)
    err = capsys.readouterr().err
    assert status == 1
    assert "rejected (truncated)" in err and "rejected (corrupt_fits)" in err and "rejected (eclipse)" in err
    assert "rejected (absurd_header): CUNIT1='bogus' is not a unit" in err
    assert "Traceback" not in err
    assert len(list(out.glob("*.fits"))) == 1


def test_run_frame_in_memory(real_frame_paths: dict[str, Path], tiny_onnx: Path) -> None:
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import STAGES, run_frame
    from service.sources.gong.reader import read_gong

    frame = real_frame_paths["gongx"]
    result = run_frame(frame.read_bytes(), OnnxGenerator(tiny_onnx), filename=frame.name, reader=read_gong)
    assert set(result.timings) == set(STAGES) and all(t >= 0 for t in result.timings.values())
    assert result.fits_bytes.startswith(b"SIMPLE  =") and result.png_bytes.startswith(b"\x89PNG")
    assert result.input_sha256 == hashlib.sha256(frame.read_bytes()).hexdigest()
    assert result.provenance["preprocess_version"] and result.site == "BB"
    assert result.fits_path is None and result.basename.startswith(frame.name.split(".")[0])


def test_frames_of_cycle_25_get_the_cycle_24_model_output_negated(
    val_pair: tuple[Path, Path], tiny_onnx: Path, tiny_onnx_factory, tmp_path: Path
) -> None:
    from service.inference.onnx_model import OnnxGenerator
    from service.inference.process import run_frame
    from service.science.dataset import read_halpha_u8
    from service.sources.gong.reader import read_gong

    image = read_halpha_u8(val_pair[0])
    frame_2014 = write_gong_frame(image, "2014-05-23T00:00:34", "B", "gongx", tmp_path, rng=3)
    frame_2026 = write_gong_frame(image, "2026-05-23T00:00:34", "B", "gongx", tmp_path, rng=3)
    cycle24 = OnnxGenerator(tiny_onnx_factory(solar_cycle="24"))
    assert cycle24.solar_cycle == 24
    then, now = run_frame(frame_2014, cycle24, reader=read_gong), run_frame(frame_2026, cycle24, reader=read_gong)
    assert (then.provenance["polarity_sign"], now.provenance["polarity_sign"]) == (1, -1)
    assert (now.provenance["model_cycle"], now.provenance["frame_cycle"]) == (24, 25)
    header = fits.getheader(io.BytesIO(now.fits_bytes))
    assert (header["MODCYCLE"], header["CYCLE"], header["POLSIGN"]) == ("24", "25", "-1")

    # Same frame, a model whose convention is unknown: its output as it is.
    unknown = run_frame(frame_2026, OnnxGenerator(tiny_onnx), reader=read_gong)
    assert unknown.provenance["polarity_sign"] == 1
    assert "MODCYCLE" not in fits.getheader(io.BytesIO(unknown.fits_bytes))
    disk = np.isfinite(now.gauss)
    np.testing.assert_allclose(now.gauss[disk], -unknown.gauss[disk], atol=1e-4)
    assert np.abs(now.gauss[disk]).max() > 1.0  # not a zero map that any sign leaves equal


def test_model_metadata_cycle_wins_over_the_setting(tiny_onnx_factory) -> None:
    from service.errors import ModelIncompatible
    from service.inference.onnx_model import OnnxGenerator

    assert OnnxGenerator(tiny_onnx_factory(solar_cycle="25"), solar_cycle=24).solar_cycle == 25
    with pytest.raises(ModelIncompatible, match="solar_cycle"):
        OnnxGenerator(tiny_onnx_factory(solar_cycle="twenty-four"))
