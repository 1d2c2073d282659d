"""A real Prometheus scrapes the running API's /metrics and queries a synmag metric back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.api.app import create_app
from service.api.state import AppState
from tests.conftest import REPO_ROOT
from tests.feedapp import make_settings, populate, serve_app

pytestmark = [pytest.mark.servers, pytest.mark.slow]


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    settings = make_settings(tmp_path)
    populate(settings, n=1, with_input=False)
    state = AppState()
    state.set_model("feedtest-1", ["CPUExecutionProvider"])
    with serve_app(create_app(settings, state)) as url:
        yield url


def test_prometheus_scrapes_the_service(app_url: str, prometheus_factory) -> None:
    from service import observability

    observability.catchup_backlog_minutes.set(7)
    target = app_url.removeprefix("http://")
    prom = prometheus_factory([target], rule_files=[REPO_ROOT / "deploy/prometheus/alerts.yml"])
    result = prom.wait_for('synmag_catchup_backlog_minutes{job="synmag"}')
    assert float(result[0]["value"][1]) == 7.0
    assert result[0]["metric"]["instance"] == target
    # Series declared at start exist before any event (here: no product was made in-process).
    rejected = prom.query('synmag_frames_rejected_total{job="synmag",reason="eclipse"}')
    assert rejected and float(rejected[0]["value"][1]) == 0.0
    # The deployed alerting rules load and evaluate against the real series.
    assert prom.wait_for('up{job="synmag"} == 1')
    groups = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 4
    assert all(r["health"] in ("ok", "unknown") for r in rules), [r.get("lastError") for r in rules]
