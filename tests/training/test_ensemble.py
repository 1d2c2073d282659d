"""Seed ensembles: the mean of members, the N-S view, and export as one ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.ensemble import Ensemble  # noqa: E402
from training.export import export_onnx, parity  # noqa: E402
from training.model import UNetGenerator, init_weights  # noqa: E402


def _member(seed: int, coords: bool = True, depth: int = 6) -> UNetGenerator:
    torch.manual_seed(seed)
    g = UNetGenerator(ngf=4, depth=depth, coords=coords)
    init_weights(g)
    return g.eval()


def _frame(seed: int = 0, size: int = 128) -> torch.Tensor:
    return torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_one_member_without_view_is_the_member() -> None:
    g = _member(0)
    x = _frame()
    assert torch.equal(Ensemble([g], ns_view=False)(x), g(x))


@torch.no_grad()
def test_members_are_averaged() -> None:
    a, b = _member(0), _member(1)
    x = _frame()
    torch.testing.assert_close(Ensemble([a, b], ns_view=False)(x), (a(x) + b(x)) / 2)


@torch.no_grad()
def test_ns_view_makes_the_mirrored_sun_carry_the_negated_field() -> None:
    """Hale's law mirrored: E(flip x) == -flip(E(x)) exactly, which no single member does."""
    g = _member(0)
    x = _frame()
    mirror = x.flip(-2)
    single = g(mirror)
    assert not torch.allclose(single, -g(x).flip(-2), atol=1e-3)
    e = Ensemble([g], ns_view=True)
    torch.testing.assert_close(e(mirror), -e(x).flip(-2))


def test_members_of_another_depth_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        Ensemble([_member(0, depth=6), _member(1, depth=5)])


def test_exports_as_one_graph_with_parity(tmp_path) -> None:
    e = Ensemble([_member(0, depth=8), _member(1, depth=8)], ns_view=True, smooth_sigma_px=2.0)
    path = export_onnx(e, tmp_path / "ens.onnx", {"config": {"members": 2}, "version": "v-ens"})
    frames = np.random.default_rng(0).normal(size=(1, 256, 256)).astype(np.float32)
    assert parity(e, path, frames)["max_abs_diff_g"] < 0.5


@torch.no_grad()
def test_smoothing_keeps_a_uniform_field_and_the_mean() -> None:
    """The kernel is normalised: a constant passes unchanged, and a point spreads over a few px."""
    from training.ensemble import gaussian_kernel, smooth

    k = gaussian_kernel(2.0)
    assert abs(float(k.sum()) - 1.0) < 1e-6 and k.numel() == 13
    flat = torch.full((1, 1, 32, 32), 0.3)
    torch.testing.assert_close(smooth(flat, k), flat)
    point = torch.zeros(1, 1, 33, 33)
    point[0, 0, 16, 16] = 1.0
    out = smooth(point, k)
    assert abs(float(out.sum()) - 1.0) < 1e-5 and float(out.max()) < 0.05


@torch.no_grad()
def test_smoothing_keeps_the_ns_antisymmetry() -> None:
    e = Ensemble([_member(0)], ns_view=True, smooth_sigma_px=1.5)
    x = _frame(1)
    torch.testing.assert_close(e(x.flip(-2)), -e(x).flip(-2))


def test_negative_smoothing_is_refused() -> None:
    with pytest.raises(ValueError, match="smooth"):
        Ensemble([_member(0)], smooth_sigma_px=-1)


@torch.no_grad()
def test_gain_scales_and_clips_to_the_model_range() -> None:
    g = _member(0)
    x = _frame(2)
    plain = Ensemble([g], ns_view=False)(x)
    loud = Ensemble([g], ns_view=False, gain=1e4)(x)
    torch.testing.assert_close(loud, (plain * 1e4).clamp(-1, 1))
    assert float(loud.abs().max()) == 1.0
