"""The feed with both kinds in production: a nowcast where the replay has a prior, H-alpha only where not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select

from service.db import Product, session_scope
from service.pipeline.minute import process_minute
from tests.pipeline_world import World

pytestmark = pytest.mark.slow


def _both_kinds(world, tiny_onnx: Path, tiny_nowcast_onnx: Path, **overrides) -> World:
    """The tiny nowcast (SYNMAG_MODEL) and the tiny H-alpha-only model promoted in the registry."""
    w = world(model=tiny_nowcast_onnx, prior=True, **overrides)
    registry = w.ctx.runtime.registry
    halpha = registry.register(tiny_onnx, metrics={}, report=None, lineage={"source": "test"})
    registry.promote(halpha.version, force=True)
    w.ctx.runtime.refresh()
    assert w.ctx.runtime.nowcast is not None and w.ctx.runtime.current is not None
    return w


def _header(w: World, p: Product) -> fits.Header:
    return fits.getheader(io.BytesIO(w.ctx.store.get(w.ctx.store.key_for(p.fits_uri))))


def test_a_minute_with_a_prior_is_a_nowcast_recorded_with_its_prior(world, tiny_onnx, tiny_nowcast_onnx):
    w = _both_kinds(world, tiny_onnx, tiny_nowcast_onnx)
    out = process_minute(w.minute(1), w.ctx)  # the replay's second day: the first is its prior
    assert out.outcome == "product", out.detail
    with session_scope(w.ctx.sessions) as s:
        p = s.scalars(select(Product)).one()
    assert (p.model_kind, p.model_version) == ("nowcast", "tiny-nowcast-test")
    assert p.prior_obs is not None and p.prior_age_h > 20 and len(p.prior_sha256) == 64 and p.prior_note is None
    h = _header(w, p)
    assert h["MODKIND"] == "nowcast" and float(h["PRIORAGE"]) == pytest.approx(p.prior_age_h, abs=1e-3)


def test_a_minute_without_a_prior_is_served_by_the_halpha_model_saying_why(world, tiny_onnx, tiny_nowcast_onnx):
    w = _both_kinds(world, tiny_onnx, tiny_nowcast_onnx)
    out = process_minute(w.minute(0), w.ctx)  # the replay's first day: nothing earlier
    assert out.outcome == "product", out.detail
    with session_scope(w.ctx.sessions) as s:
        p = s.scalars(select(Product)).one()
    assert (p.model_kind, p.prior_obs) == ("halpha", None)
    assert "no usable magnetogram from replay" in p.prior_note and _header(w, p)["PRIORWHY"]
    assert process_minute(w.minute(0), w.ctx).outcome == "exists"  # served once, by either kind


def test_a_prior_source_outage_does_not_stall_the_minute(world, tiny_onnx, tiny_nowcast_onnx):
    w = _both_kinds(world, tiny_onnx, tiny_nowcast_onnx, prior_url="http://127.0.0.1:9")  # nothing listens
    out = process_minute(w.minute(1), w.ctx)
    assert out.outcome == "product", out.detail
    with session_scope(w.ctx.sessions) as s:
        p = s.scalars(select(Product)).one()
    assert p.model_kind == "halpha" and "unavailable" in p.prior_note
