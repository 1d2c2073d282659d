"""``/v1/status``: the reasons the feed gives for showing nothing (new), one behaviour each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from service.api.app import create_app
from service.api.feed_status import feed_status
from service.api.state import AppState
from service.db import ModelVersion, Product, Run, make_engine, session_factory, session_scope
from tests.feedapp import make_settings, populate, serve_app

STALE_S = 300.0


@pytest.fixture
def empty(tmp_path):
    """A migrated feed with a production model and no product; its engine."""
    settings = make_settings(tmp_path)
    populate(settings, n=0)
    engine = make_engine(settings)
    yield settings, engine
    engine.dispose()


def status_of(engine, state=None):
    with session_factory(engine)() as session:
        return feed_status(session, state, STALE_S)


def record_run(engine, outcome: str, detail: str | None) -> None:
    line = json.dumps({"minute": "2026-12-02T06:47Z", "outcome": outcome, "detail": detail})
    with session_scope(engine) as s:
        s.add(Run(obs_minute=datetime(2026, 12, 2, 6, 47, tzinfo=UTC), outcome="skipped", detail=line,
                  finished_at=datetime.now(UTC)))


def test_an_api_only_process_with_no_run_asks_whether_the_feed_runs(empty) -> None:
    _, engine = empty
    s = status_of(engine)
    assert not s.has_products and s.pipeline is None
    assert s.reasons == ["no observation minute has been processed yet: is `synmag serve` running "
                         "and the GONG archive reachable?"]


def test_the_last_runs_outcome_and_reason_are_given(empty) -> None:
    _, engine = empty
    record_run(engine, "no_model", "no model available")
    s = status_of(engine)
    assert s.last_run.outcome == "no_model"
    assert s.reasons == ["last minute processed, 2026-12-02 06:47Z: no_model (no model available)"]


def test_no_production_model_is_named(empty) -> None:
    _, engine = empty
    with session_scope(engine) as s:
        s.execute(update(ModelVersion).values(status="candidate"))
    assert status_of(engine).reasons[0].startswith("no model: the registry has no production version")


def test_a_starting_pipeline_says_the_model_is_loading(empty) -> None:
    _, engine = empty
    assert status_of(engine, AppState(pipeline="starting")).reasons[0] == (
        "the feed is starting: the model is being loaded")


def test_a_follower_says_another_replica_schedules(empty) -> None:
    _, engine = empty
    state = AppState(pipeline="running")
    state.set_model("feedtest-1", ["CPUExecutionProvider"])
    state.tick_done(datetime.now(UTC), False, None)
    assert status_of(engine, state).reasons == [
        "this replica is not scheduling: another replica holds the leader lock"]


def test_a_fresh_product_needs_no_reason(tmp_path) -> None:
    settings = make_settings(tmp_path)
    populate(settings, n=1, with_input=False)
    engine = make_engine(settings)
    s = status_of(engine)
    engine.dispose()
    assert s.has_products and s.reasons == []


def test_a_stale_product_says_how_old(tmp_path) -> None:
    settings = make_settings(tmp_path)
    populate(settings, n=1, with_input=False)
    engine = make_engine(settings)
    with session_scope(engine) as s:
        s.execute(update(Product).values(created_at=datetime.now(UTC) - timedelta(hours=2)))
    reasons = status_of(engine).reasons
    engine.dispose()
    assert reasons[0] == "the newest product was committed 120 min ago"


def test_the_route_answers_the_same(empty) -> None:
    settings, _ = empty
    with serve_app(create_app(settings)) as url:
        body = httpx.get(url + "/v1/status", timeout=30).json()
    assert body["has_products"] is False and body["production_model"] == "feedtest-1"
    assert body["reasons"][0].startswith("no observation minute has been processed yet")


def test_status_names_the_production_version_of_each_kind(empty) -> None:
    settings, _ = empty
    engine = make_engine(settings)
    with session_scope(engine) as s:
        s.add(ModelVersion(version="nc-1", kind="nowcast", sha256="9" * 64, onnx_uri="file:///n.onnx",
                           metrics={}, lineage={}, status="production"))
    status = status_of(engine)
    engine.dispose()
    assert status.production_model == "feedtest-1"  # the H-alpha-only fallback
    assert status.production_models == {"halpha": "feedtest-1", "nowcast": "nc-1"}
