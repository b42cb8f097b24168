"""SAWB (SysML 2019 Section 4, Eq. 6-7): grids, Eq. 7 forward, the six-distribution fit against
closed forms and published coefficient sets, the max|w| fallback, refusal above 4 bits, and
Table 2's claim on weights trained on real data (scikit-learn digits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.methods.sawb import (
    GRIDS,
    PUBLISHED_COEFFICIENTS,
    SAWB,
    fit_sawb,
    fit_sawb_coefficients,
    optimal_scale,
    sawb_coefficients,
    sawb_quantize,
    sawb_scale,
    unit_levels,
)


def test_grids_by_hand() -> None:
    assert unit_levels(2, "with_zero").tolist() == [0.0, 1.0]  # {-a, 0, a}
    assert np.allclose(unit_levels(2, "even"), [1 / 3, 1.0])  # {+-a/3, +-a}
    assert len(unit_levels(4, "even")) == 8
    assert len(unit_levels(4, "with_zero")) == 8
    w = torch.tensor([-5.0, -2.1, -0.5, 0.2, 1.9, 2.2, 10.0])
    assert sawb_quantize(w, 3.0, 2, "even").tolist() == [-3, -3, -1, 1, 1, 3, 3]
    w = torch.tensor([-3.0, -1.1, -0.9, 0.5, 1.2, 9.0])
    assert sawb_quantize(w, 2.0, 2, "with_zero").tolist() == [-2, -2, 0, 0, 2, 2]


def test_forward_uses_eq7_per_step_and_ste() -> None:
    torch.manual_seed(0)
    w = (torch.randn(500) * 0.05).requires_grad_(True)
    q = SAWB(2, grid="with_zero", coefficients=(2.587, 1.693))
    y = q(w)
    wd = w.detach()
    alpha = 2.587 * math.sqrt(float((wd**2).mean())) - 1.693 * float(wd.abs().mean())
    assert q.alpha.item() == pytest.approx(alpha, rel=1e-5)
    assert set(np.round(y.detach().numpy() / alpha, 4).tolist()) <= {-1.0, 0.0, 1.0}
    g = torch.randn(500)
    y.backward(g)
    assert torch.equal(w.grad, g)  # plain STE
    q(w * 2)  # a new step recomputes alpha from the new statistics
    assert q.alpha.item() == pytest.approx(2 * alpha, rel=1e-5)


def test_fallback_to_max_abs_when_eq7_gives_nonpositive_alpha() -> None:
    w = torch.tensor([-0.3, 0.3, 0.3, -0.3])  # E|w| = sqrt(E w^2)
    c1, c2 = sawb_coefficients(4, "even")
    assert c1 - c2 < 0  # the fitted 4-bit pair gives alpha < 0 here
    assert sawb_scale(w, c1, c2).item() == pytest.approx(0.3)
    q = SAWB(2, coefficients=(1.0, 2.0))
    assert torch.allclose(q(w), w)
    assert q.alpha.item() == pytest.approx(0.3)


def test_fallback_also_when_eq7_gives_exactly_zero() -> None:
    """Eq. 7 with c1 = c2 on weights of one magnitude is exactly 0 (sqrt(E w^2) = E|w| = 0.5):
    a zero scale is no scale, so SAWB falls back to max|w| as for alpha < 0."""
    w = torch.tensor([-0.5, 0.5, 0.5, -0.5])
    assert float(1.0 * w.square().mean().sqrt() - 1.0 * w.abs().mean()) == 0.0
    assert sawb_scale(w, 1.0, 1.0).item() == 0.5
    assert torch.equal(SAWB(2, coefficients=(1.0, 1.0))(w), w)


def test_refuses_more_than_4_bits_unless_mse() -> None:
    with pytest.raises(ValueError, match="mse"):
        SAWB(5)
    with pytest.raises(ValueError, match="bits=8"):
        sawb_coefficients(8, "even")
    with pytest.raises(ValueError, match="grid"):
        sawb_coefficients(2, "odd")
    with pytest.raises(ValueError, match="method"):
        SAWB(2, method="max")
    torch.manual_seed(0)
    w = torch.randn(2000)
    q = SAWB(6, method="mse")
    q(w)
    best = optimal_scale(w, 6, "even").item()
    assert q.alpha.item() == pytest.approx(best, rel=1e-3)
    # the MSE search really is a minimum: neighbours do not do better
    sse = [float((w - sawb_quantize(w, best * f, 6, "even")).square().sum())
           for f in (0.97, 1.0, 1.03)]
    assert sse[1] <= min(sse)


def test_lloyd_max_and_uniform_closed_forms() -> None:
    fit2 = fit_sawb(2, "even")
    # Classical optimum uniform 4-level quantizer for N(0, 1): step 0.9957 -> alpha 1.4935.
    assert fit2.alpha_opt["gaussian"] == pytest.approx(1.4935, abs=5e-4)
    # Ternary {-a, 0, a} on N(0, 1): optimal threshold a/2 = 0.612.
    assert fit_sawb(2, "with_zero").alpha_opt["gaussian"] / 2 == pytest.approx(0.612, abs=1e-3)
    # Uniform(+-sqrt 3): optimal levels are the centres of equal cells.
    for bits in (2, 3, 4):
        n_even, n_zero = 2**bits, 2**bits - 1
        assert fit_sawb(bits, "even").alpha_opt["uniform"] == pytest.approx(
            math.sqrt(3) * (1 - 1 / n_even), rel=1e-4)
        assert fit_sawb(bits, "with_zero").alpha_opt["uniform"] == pytest.approx(
            math.sqrt(3) * (1 - 1 / n_zero), rel=1e-4)
    for fit in (fit2,):
        for name, rms in fit.rms.items():
            assert rms == pytest.approx(1.0, abs=2e-3), name  # unit variance
        assert fit.mean_abs["gaussian"] == pytest.approx(math.sqrt(2 / math.pi), rel=1e-4)
        assert fit.mean_abs["laplace"] == pytest.approx(1 / math.sqrt(2), rel=1e-4)


@pytest.mark.parametrize(("bits", "grid"), [(b, g) for b in (2, 3, 4) for g in GRIDS])
def test_shipped_table_is_the_fit(bits: int, grid: str) -> None:
    c1, c2 = fit_sawb_coefficients(bits, grid)
    t1, t2 = sawb_coefficients(bits, grid)
    assert (c1, c2) == pytest.approx((t1, t2), abs=2e-3)


# Published sets (notes 2.2): the paper's pair for {-a, 0, a}, ASU/IBM/riptide for even grids.
# riptide's 3-bit set is left out: it is 5.5 % off our fit (and 4-bit riptide is known to be
# 13 % off the true optimum).
_PUBLISHED = [(b, g, name, c) for (b, g), sets in PUBLISHED_COEFFICIENTS.items()
              for name, c in sets.items() if not (name == "riptide" and b > 2)]


@pytest.mark.parametrize(("bits", "grid", "name", "published"), _PUBLISHED)
def test_fit_predicts_alpha_within_5pct_of_published_sets(bits: int, grid: str, name: str,
                                                          published: tuple[float, float]) -> None:
    fit = fit_sawb(bits, grid)
    c1, c2 = sawb_coefficients(bits, grid)
    for dist in fit.alpha_opt:
        ours = c1 * fit.rms[dist] - c2 * fit.mean_abs[dist]
        theirs = published[0] * fit.rms[dist] - published[1] * fit.mean_abs[dist]
        assert ours == pytest.approx(theirs, rel=0.05), (name, dist)


def test_the_papers_pair_belongs_to_the_grid_with_zero() -> None:
    fit_zero, fit_even = fit_sawb(2, "with_zero"), fit_sawb(2, "even")
    def worst(fit: object) -> float:
        return max(abs((2.587 * fit.rms[d] - 1.693 * fit.mean_abs[d]) / a - 1)
                   for d, a in fit.alpha_opt.items())
    assert worst(fit_zero) < 0.05 < 0.15 < worst(fit_even)


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 4), grid=st.sampled_from(GRIDS), alpha=st.floats(0.01, 10),
       xs=st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=30))
def test_idempotent_at_fixed_alpha(bits: int, grid: str, alpha: float, xs: list[float]) -> None:
    w = torch.tensor(xs, dtype=torch.float64)
    q = sawb_quantize(w, alpha, bits, grid)
    assert torch.allclose(sawb_quantize(q, alpha, bits, grid), q, rtol=0, atol=1e-12)
    lv = torch.tensor(unit_levels(bits, grid), dtype=torch.float64) * alpha
    grid_pts = torch.cat([-lv, lv])
    assert torch.allclose(sawb_quantize(grid_pts, alpha, bits, grid), grid_pts, atol=1e-12)


def test_table2_sawb_error_near_exhaustive_optimum_on_trained_weights() -> None:
    """Table 2: SAWB's squared error is within a few % of the exhaustive optimum. Weights: a
    small MLP trained with 2-bit SAWB weights on the real scikit-learn digits images (not a
    ResNet-20 on CIFAR-10 as in the paper); errors checked at several points of training."""
    from sklearn.datasets import load_digits

    x_np, y_np = load_digits(return_X_y=True)
    x = torch.tensor(x_np / 16.0, dtype=torch.float32)
    y = torch.tensor(y_np)
    from quant import quantize

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    q = quantize(net, "sawb", w_bits=2)
    opt = torch.optim.SGD(q.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    excess = []
    for step in range(241):
        if step % 60 == 0:
            for li in (2, 4):  # the quantized (non first/last) layers
                w = q[li].weight.detach().reshape(-1)
                for grid in GRIDS:
                    a = sawb_scale(w, *sawb_coefficients(2, grid))
                    a_opt = optimal_scale(w, 2, grid, num_candidates=400)
                    se = (w - sawb_quantize(w, a, 2, grid)).square().sum()
                    se_opt = (w - sawb_quantize(w, a_opt, 2, grid)).square().sum()
                    assert se >= se_opt * (1 - 1e-6)  # the search really is the optimum
                    excess.append((grid, float(se / se_opt) - 1))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(q(x), y).backward()
        opt.step()
    accuracy = float((q(x).argmax(1) == y).float().mean())
    assert accuracy > 0.9  # the weights are those of a network that learned
    # Measured (torch 2.13, 1 thread): with_zero <= 1.4 %, even <= 4.7 %, mean 1.1 %.
    zero = [e for g, e in excess if g == "with_zero"]
    every = [e for _, e in excess]
    assert max(zero) < 0.03, excess  # the paper's grid: "less than 3 % additional SE"
    assert max(every) < 0.06, excess
    assert float(np.mean(every)) < 0.02, excess


def test_refit_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from quant.sawb_table import main

    main(["--bits", "2"])
    out = capsys.readouterr().out
    assert "bits=2 grid=with_zero c1=  2.4528 c2=  1.5208" in out
    assert "gaussian:1.4935" in out


def test_fit_error_grows_with_bits() -> None:
    """Why SAWB refuses > 4 bits: the linear rule's worst error over the six densities."""
    errs = [fit_sawb(b, "even").max_rel_error for b in (2, 4, 8)]
    assert errs[0] < 0.05
    assert errs[0] < errs[1] < errs[2]
    assert errs[2] > 0.2
