"""Model registry: register, gate, promote, rollback, resolve, bundled model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.errors import FatalError, UsageError
from service.registry import GateFailed, Registry
from service.settings import Settings


def make_onnx(path: Path, seed: float = 1.0, **metadata: str) -> Path:
    """A minimal model obeying the I/O contract (bz = seed * halpha); no torch needed.

    ``seed`` changes the bytes, hence the sha256. Metadata keys get the ``synmag.`` prefix.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from service.science.preprocess import PREPROCESS_VERSION

    dims = ["N", 1, "H", "W"]
    graph = helper.make_graph(
        [helper.make_node("Mul", ["halpha", "k"], ["bz"])],
        "tiny",
        [helper.make_tensor_value_info("halpha", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("bz", TensorProto.FLOAT, dims)],
        [helper.make_tensor("k", TensorProto.FLOAT, [], [seed])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"preprocess_version": PREPROCESS_VERSION, "units": "model", "gauss_scale": "200.0"}
    meta.update(metadata)
    helper.set_model_props(model, {f"synmag.{k}": v for k, v in meta.items()})
    onnx.save(model, str(path))
    return path


GOOD_CALIBRATION = {"n": 1000, "ece": 0.02, "auroc": 0.8, "coverage": 0.68, "decile_ratio": 3.0}


def metrics(r: float, ppa: float, *, zero: tuple[Any, Any] = (None, 0.0),
            persistence: tuple[Any, Any] = (0.5, 0.6), calibration: dict | None = None) -> dict[str, Any]:
    """A val summary in the registry's format (means, some with sd)."""
    return {
        "split": "val",
        "calibration": dict(GOOD_CALIBRATION) if calibration is None else calibration,
        "model": {"r_bin8": {"mean": r, "sd": 0.01}, "ar_ppa": {"20": ppa}, "psnr": 30.0},
        "baselines": {
            "zero": {"r_bin8": zero[0], "ar_ppa": {"20": zero[1]}},
            "persistence": {"r_bin8": persistence[0], "ar_ppa": {"20": persistence[1]}},
        },
    }


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/synmag.db",
        store_url=f"file://{tmp_path}/store",
        model_cache_dir=tmp_path / "cache",
        bundled_model_dir=tmp_path / "bundled",
        model=None,
    )


@pytest.fixture
def registry(settings) -> Registry:
    reg = Registry(settings)
    yield reg
    reg.engine.dispose()


def _register(reg: Registry, tmp_path: Path, name: str, seed: float, m: dict, **meta: str):
    path = make_onnx(tmp_path / f"{name}.onnx", seed, **meta)
    return reg.register(path, metrics=m, report={"figures": [], "summary": m},
                        lineage={"config": "smoke.toml"})


def test_register_stores_files_and_candidate_row(registry, tmp_path):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    assert mv.status == "candidate"
    assert len(mv.sha256) == 64
    assert registry.store.get(f"models/{mv.version}/model.onnx") == (tmp_path / "a.onnx").read_bytes()
    report = json.loads(registry.store.get(f"models/{mv.version}/report.json"))
    assert report["summary"]["model"]["psnr"] == 30.0
    assert mv.version.endswith(mv.sha256[:8])
    assert mv.preprocess_version is not None


def test_register_same_file_twice_returns_existing(registry, tmp_path):
    first = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    again = registry.register(tmp_path / "a.onnx", metrics={}, report=None, lineage={})
    assert again.version == first.version
    assert len(registry.list()) == 1


def test_version_from_onnx_metadata_and_nan_stored_as_null(registry, tmp_path):
    m = metrics(0.7, 0.8, zero=(float("nan"), 0.0))
    mv = _register(registry, tmp_path, "a", 1.0, m, version="paper-b-1")
    assert mv.version == "paper-b-1"
    assert registry.get("paper-b-1").metrics["baselines"]["zero"]["r_bin8"] is None


def test_same_version_other_content_refused(registry, tmp_path):
    _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    path = make_onnx(tmp_path / "b.onnx", 2.0)
    with pytest.raises(UsageError, match="another sha256"):
        registry.register(path, metrics={}, report=None, lineage={},
                          version=registry.list()[0].version)


def test_same_metadata_version_other_file_gets_suffix(registry, tmp_path):
    a = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8), version="tiny")
    b = _register(registry, tmp_path, "b", 2.0, metrics(0.7, 0.8), version="tiny")
    assert a.version == "tiny"
    assert b.version == f"tiny-{b.sha256[:8]}"


def test_gate_passes_when_both_baselines_beaten(registry, tmp_path):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    result = registry.gate(mv.version)
    assert result.passed, result.reasons
    assert registry.get(mv.version).gate["passed"] is True


def test_gate_fails_below_persistence(registry, tmp_path):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.45, 0.8))
    result = registry.gate(mv.version)
    assert not result.passed
    assert any("r_bin8" in r and "persistence" in r for r in result.reasons)


def test_gate_fails_without_baselines(registry, tmp_path):
    path = make_onnx(tmp_path / "a.onnx")
    mv = registry.register(path, metrics={"model": {"r_bin8": 0.9, "ar_ppa": {"20": 0.9}}},
                           report=None, lineage={})
    assert not registry.gate(mv.version).passed


def test_gate_fails_other_preprocess_version(registry, tmp_path):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8), preprocess_version="0-old")
    reasons = registry.gate(mv.version).reasons
    assert any("preprocess_version" in r for r in reasons)


def test_gate_refuses_regression_beyond_tolerance(registry, tmp_path):
    prod = _register(registry, tmp_path, "a", 1.0, metrics(0.70, 0.80))
    registry.promote(prod.version)
    slightly = _register(registry, tmp_path, "b", 2.0, metrics(0.69, 0.80))
    worse = _register(registry, tmp_path, "c", 3.0, metrics(0.60, 0.80))
    assert registry.gate(slightly.version, tolerance=0.02).passed
    result = registry.gate(worse.version, tolerance=0.02)
    assert not result.passed
    assert any("regresses" in r for r in result.reasons)


def test_promote_refuses_gate_failure_unless_forced(registry, tmp_path):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.1, 0.1))
    with pytest.raises(GateFailed):
        registry.promote(mv.version)
    assert registry.production() is None
    registry.promote(mv.version, force=True)
    assert registry.production().version == mv.version


def test_promote_then_rollback(registry, tmp_path):
    a = _register(registry, tmp_path, "a", 1.0, metrics(0.70, 0.80))
    b = _register(registry, tmp_path, "b", 2.0, metrics(0.75, 0.82))
    registry.promote(a.version)
    registry.promote(b.version)
    assert registry.production().version == b.version
    assert registry.get(a.version).status == "retired"
    back = registry.rollback()
    assert back.version == a.version
    assert registry.production().version == a.version
    assert registry.get(b.version).status == "rejected"
    with pytest.raises(UsageError):
        registry.rollback()  # nothing earlier than a


def test_resolve_version_downloads_and_verifies(registry, tmp_path, settings):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    path = registry.resolve(mv.version)
    assert path.is_relative_to(settings.model_cache_dir)
    assert path.read_bytes() == (tmp_path / "a.onnx").read_bytes()
    assert registry.resolve(str(tmp_path / "a.onnx")) == tmp_path / "a.onnx"


def test_resolve_none_is_production(registry, tmp_path):
    with pytest.raises(UsageError, match="no production model"):
        registry.resolve(None)
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    registry.promote(mv.version)
    assert registry.resolve(None).read_bytes() == (tmp_path / "a.onnx").read_bytes()


def test_resolve_unknown_lists_known_versions(registry, tmp_path):
    _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8), version="known-1")
    with pytest.raises(UsageError, match="known-1"):
        registry.resolve("nope")
    with pytest.raises(UsageError, match="no such model file"):
        registry.resolve(str(tmp_path / "missing.onnx"))


def test_resolve_detects_tampered_store(registry, tmp_path):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8))
    registry.store.put(f"models/{mv.version}/model.onnx", b"tampered", if_none_match=False)
    with pytest.raises(FatalError, match="sha256"):
        registry.resolve(mv.version)


def test_ensure_bundled_registers_production(registry, settings):
    folder = settings.bundled_model_dir
    folder.mkdir()
    make_onnx(folder / "synmag-v1.onnx", 5.0, version="v1-bundled")
    (folder / "model_card.md").write_text("# synmag v1\n")
    (folder / "metrics.json").write_text(json.dumps(metrics(0.7, 0.8)))
    (mv,) = registry.ensure_bundled()
    assert mv.version == "v1-bundled" and mv.status == "production"
    assert mv.lineage["source"] == "bundled"
    assert mv.metrics["baselines"]["persistence"]["r_bin8"] == 0.5
    assert registry.ensure_bundled() == []  # production exists: no-op
    assert registry.resolve(None).read_bytes() == (folder / "synmag-v1.onnx").read_bytes()


def test_ensure_bundled_without_model_is_noop(registry, settings):
    settings.bundled_model_dir.mkdir()
    make_onnx(settings.bundled_model_dir / "stray.onnx")  # no model card or metrics beside it
    assert registry.ensure_bundled() == []
    assert registry.list() == []


def test_registry_on_postgresql_and_s3(postgres_url, s3_bucket, tmp_path, monkeypatch):
    server, bucket = s3_bucket
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        database_url=postgres_url, store_url=f"s3://{bucket}/registry",
        s3_endpoint_url=server.endpoint_url, model_cache_dir=tmp_path / "cache",
        bundled_model_dir=tmp_path / "none",
    )
    reg = Registry(settings)
    a = _register(reg, tmp_path, "a", 1.0, metrics(0.70, 0.80))
    b = _register(reg, tmp_path, "b", 2.0, metrics(0.72, 0.80))
    assert a.onnx_uri.startswith(f"s3://{bucket}/registry/models/")
    reg.promote(a.version)
    reg.promote(b.version)
    assert reg.rollback().version == a.version
    assert reg.resolve(None).read_bytes() == (tmp_path / "a.onnx").read_bytes()
    reg.engine.dispose()


@pytest.mark.slow  # builds the session's tiny_onnx with torch (shared with other tests)
def test_register_exported_generator_reads_its_metadata(registry, tiny_onnx):
    # The real export path (training.export): version, preprocessing and config from metadata.
    from service.science.preprocess import PREPROCESS_VERSION

    mv = registry.register(tiny_onnx, metrics={}, report=None, lineage={"source": "test"})
    assert mv.version == "tiny-test"
    assert mv.preprocess_version == PREPROCESS_VERSION
    assert mv.config["name"] == "tiny-untrained-test-only"


def test_gate_refuses_a_version_without_val_calibration(registry, tmp_path):
    m = metrics(0.7, 0.8)
    del m["calibration"]
    mv = _register(registry, tmp_path, "a", 1.0, m)
    assert any("calibration" in r for r in registry.gate(mv.version).reasons)


@pytest.mark.parametrize("bad", [{"ece": 0.08}, {"coverage": 0.9}, {"coverage": 0.5}, {"auroc": 0.6},
                                 {"decile_ratio": 1.5}])
def test_gate_refuses_a_miscalibrated_version(registry, tmp_path, bad):
    mv = _register(registry, tmp_path, "a", 1.0, metrics(0.7, 0.8, calibration={**GOOD_CALIBRATION, **bad}))
    result = registry.gate(mv.version)
    assert not result.passed and all(r.startswith("calibration:") for r in result.reasons)


def test_one_production_version_per_kind(registry, tmp_path):
    halpha = _register(registry, tmp_path, "h", 1.0, metrics(0.7, 0.8))
    nowcast = _register(registry, tmp_path, "n", 2.0, metrics(0.8, 0.9), kind="nowcast")
    assert nowcast.kind == "nowcast" and halpha.kind == "halpha"
    registry.promote(halpha.version)
    registry.promote(nowcast.version)  # does not retire the H-alpha-only model
    assert registry.production("halpha").version == halpha.version
    assert registry.production("nowcast").version == nowcast.version


def test_register_refuses_an_unknown_kind(registry, tmp_path):
    with pytest.raises(UsageError, match="synmag.kind"):
        _register(registry, tmp_path, "x", 1.0, metrics(0.7, 0.8), kind="crystal-ball")


def test_register_keeps_a_config_that_is_not_an_object(registry, tmp_path):
    path = make_onnx(tmp_path / "n.onnx", 3.0, config='[{"seed": 0}, {"seed": 1}]')
    mv = registry.register(path, metrics=metrics(0.7, 0.8), report=None, lineage={})
    assert mv.config == {"value": [{"seed": 0}, {"seed": 1}]}
