"""deploy/: Prometheus alerting rules (promtool) and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, require

PROM_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "synmag.json"
METRIC_RE = re.compile(r"\bsynmag_[a-z0-9_]+")
# Grafana's variables, replaced by what Grafana would send so promtool can parse the expr.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$job": ".*"}
ISSUE_METRICS = (  # the six metrics the issue names first
    "synmag_products_total",
    "synmag_frames_rejected_total",
    "synmag_stage_seconds",
    "synmag_end_to_end_latency_seconds",
    "synmag_last_product_timestamp_seconds",
    "synmag_model_info",
)


def promtool() -> str:
    path = shutil.which("promtool")
    require(path is not None, "promtool (Debian prometheus) is not installed")
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=60)


def declared_series() -> set[str]:
    """Every series name service.observability can expose (with type suffixes)."""
    from prometheus_client.metrics import MetricWrapperBase

    from service import observability

    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created"), "summary": ("_count", "_sum", "")}
    names = set()
    for value in vars(observability).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            if family.name.startswith("synmag_"):
                names.update(family.name + s for s in suffixes[family.type])
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_promtool_check_rules() -> None:
    res = run_promtool("check", "rules", PROM_DIR / "alerts.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_test_rules() -> None:
    res = run_promtool("test", "rules", *sorted(PROM_DIR.glob("*_test.yml")))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_check_example_config() -> None:
    res = run_promtool("check", "config", PROM_DIR / "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_alerts_cover_the_issue() -> None:
    rules = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"SynmagFeedStale", "SynmagHighFailureRatio", "SynmagVerificationDrop",
            "SynmagProviderFellBackToCPU"} <= names


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_exprs_use_only_declared_metrics(source: str) -> None:
    declared = declared_series()
    exprs = alert_exprs() if source == "alerts" else dashboard_exprs()
    used = {m for e in exprs for m in METRIC_RE.findall(e)}
    assert used, "no synmag_ metric used"
    assert used <= declared, f"not declared in service/observability.py: {sorted(used - declared)}"


def test_dashboard_is_valid_json_with_the_panels_asked_for() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(dashboard_exprs())
    for needed in ("synmag_last_product_timestamp_seconds", "synmag_products_total",
                   "synmag_frames_rejected_total", "synmag_stage_seconds_bucket",
                   "synmag_model_info", "synmag_verification_score"):
        assert needed in exprs, needed
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_dashboard_exprs_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel query (as recording rules, Grafana variables filled in)."""
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:panel_{i}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    res = run_promtool("check", "rules", path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_issue_metrics_are_declared() -> None:
    declared = declared_series()
    for name in ISSUE_METRICS:
        assert name in declared or f"{name}_bucket" in declared, name


@pytest.mark.parametrize(("asked", "required"), [
    ({}, 0.0),
    ({"providers": "cpu,cuda"}, 0.0),
    ({"providers": "cuda,cpu"}, 1.0),
    ({"require_gpu": True}, 1.0),
])
def test_runtime_exports_whether_a_gpu_is_required(asked: dict, required: float) -> None:
    """``synmag_gpu_required``, which SynmagProviderFellBackToCPU joins on, follows the settings."""
    from service.observability import REGISTRY
    from service.pipeline.runtime import ModelRuntime
    from service.settings import Settings

    ModelRuntime(Settings(**asked), registry=None)
    assert REGISTRY.get_sample_value("synmag_gpu_required") == required


def test_alerts_cover_the_prior_and_the_calibration() -> None:
    """Issues 14 and 15: a prior older than a day, no prior while one is configured, calibration drift."""
    rules = {r["alert"]: r for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    assert "synmag_prior_age_seconds" in rules["SynmagPriorStale"]["expr"]
    assert "86400" in rules["SynmagPriorStale"]["expr"]
    assert "synmag_prior_source_configured" in rules["SynmagNoPrior"]["expr"]
    assert 'metric="ece"' in rules["SynmagConfidenceMiscalibrated"]["expr"]
    assert 'metric="coverage"' in rules["SynmagSigmaMiscalibrated"]["expr"]


def test_dashboard_shows_the_prior_products_by_kind_and_calibration() -> None:
    exprs = dashboard_exprs()
    assert any("synmag_prior_age_seconds" in e for e in exprs)
    assert any("synmag_products_total" in e and "by (kind)" in e for e in exprs)
    for metric in ("ece", "coverage", "auroc"):
        assert any("synmag_calibration_score" in e and metric in e for e in exprs), metric


def test_calibration_gauges_cover_what_the_alerts_and_dashboard_name() -> None:
    """Every ``synmag_calibration_score{metric=...}`` named in deploy/ is one verification exports."""
    from service.observability import CALIBRATION_METRICS

    named = set()
    for e in alert_exprs() + dashboard_exprs():
        for labels in re.findall(r"synmag_calibration_score\{([^}]*)\}", e):
            for value in re.findall(r'metric\s*=~?\s*"([^"]*)"', labels):
                named.update(value.split("|"))
    assert named and named <= set(CALIBRATION_METRICS)
