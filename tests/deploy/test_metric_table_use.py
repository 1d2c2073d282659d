"""The dashboard and the alert rules name only metrics of the one metric table."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from service.science.metric_table import live_metrics
from tests.conftest import REPO_ROOT

SELECTOR = re.compile(r"synmag_verification_score\{([^}]*)\}")
METRIC_MATCHER = re.compile(r"""metric\s*(=~|=)\s*"([^"]*)\"""")


def _exprs() -> list[str]:
    dashboard = json.loads((REPO_ROOT / "deploy/grafana/synmag.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for path in (REPO_ROOT / "deploy/prometheus").glob("alerts*.yml"):
        doc = yaml.safe_load(path.read_text())
        exprs += [r["expr"] for g in doc.get("groups", []) for r in g["rules"]]
        exprs += [s["series"] for t in doc.get("tests", []) for s in t.get("input_series", [])]
    return exprs


def _named(expr: str) -> list[tuple[str, list[str]]]:
    out = []
    for labels in SELECTOR.findall(expr):
        for op, value in METRIC_MATCHER.findall(labels):
            out.append((op, value.split("|") if op == "=~" else [value]))
    return out


@pytest.mark.parametrize("expr", [e for e in _exprs() if "synmag_verification_score" in e])
def test_every_verification_metric_named_is_a_live_metric_of_the_table(expr: str) -> None:
    live = {m.name for m in live_metrics()}
    for _, names in _named(expr):
        assert set(names) <= live, f"{set(names) - live} not live metrics of service/science/metric_table.py"


def test_the_dashboard_shows_every_live_metric_without_naming_them() -> None:
    dashboard = json.loads((REPO_ROOT / "deploy/grafana/synmag.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert any(SELECTOR.search(e) and not _named(e) for e in exprs)
