"""LLSQ (Zhao et al. 2020): Eq. 1 forward, Eq. 7/8 STE, the simulated-gradient search and EMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.methods.llsq import LLSQActQuantizer, LLSQWeightQuantizer, sg_direction


def _brute_error(x: torch.Tensor, a: float, qmin: int, qmax: int, norm: int = 2) -> float:
    """Eq. 2 objective, written independently of the module (numpy; round half to even)."""
    v = x.double().numpy()
    q = np.clip(np.round(v / a), qmin, qmax)
    return float(np.mean(np.abs(q * a - v) ** norm))


def test_eq1_forward_on_hand_computed_values() -> None:
    w = LLSQWeightQuantizer(2, alpha=0.5).eval()  # q in {-2, -1, 0, 1}
    x = torch.tensor([-2.0, -0.8, -0.2, 0.1, 0.3, 0.74, 5.0])
    assert w(x).tolist() == [-1.0, -1.0, 0.0, 0.0, 0.5, 0.5, 0.5]
    a = LLSQActQuantizer(2, alpha=0.5).eval()  # q in {0, 1, 2, 3}
    assert a(x).tolist() == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.5]
    assert (w.qmin, w.qmax, a.qmin, a.qmax) == (-2, 1, 0, 3)


@settings(max_examples=50, deadline=None)
@given(bits=st.integers(2, 8), alpha=st.floats(1e-3, 10.0), signed=st.booleans())
def test_idempotent_and_grid_values_unchanged(bits: int, alpha: float, signed: bool) -> None:
    q = LLSQActQuantizer(bits, alpha=alpha, signed=signed).eval()
    x = torch.randn(257, dtype=torch.float64) * alpha * 2**bits
    y = q(x)
    assert torch.equal(q(y), y)
    grid = torch.arange(q.qmin, q.qmax + 1, dtype=torch.float64) * q.scale().double()
    assert torch.allclose(q(grid), grid, rtol=0, atol=1e-12 * alpha)


def test_ste_weights_identity_eq7_activations_masked_eq8() -> None:
    x = torch.tensor([-3.0, -0.2, 0.0, 0.7, 1.5, 9.0], requires_grad=True)
    LLSQWeightQuantizer(2, alpha=0.5)(x).sum().backward()
    assert x.grad.tolist() == [1.0] * 6  # Eq. 7: straight through, even where clamped
    x.grad = None
    LLSQActQuantizer(2, alpha=0.5)(x).sum().backward()  # range [0, 3 * 0.5]
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]  # Eq. 8: 0 <= x <= (2^k-1) alpha


def test_signed_activation_mask_is_eq8_on_the_signed_range() -> None:
    """Eq. 8 passes the gradient inside the clip range of Eq. 1; for signed activations
    (Leaky-ReLU nets, Section 4.1) that is [-2^(k-1) alpha, (2^(k-1) - 1) alpha] = [-1, 0.5]
    at k = 2, alpha = 0.5, so negative inputs inside it keep their gradient."""
    x = torch.tensor([-3.0, -1.0, -0.7, -0.2, 0.3, 0.5, 0.9], requires_grad=True)
    y = LLSQActQuantizer(2, alpha=0.5, signed=True)(x)
    assert y.tolist() == [-1.0, -1.0, -0.5, 0.0, 0.5, 0.5, 0.5]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("e", "es", "eb", "d"),
    [
        (1.0, 0.5, 2.0, -1),  # smaller better, bigger worse: shrink
        (1.0, 2.0, 0.5, 1),  # bigger better: grow
        (1.0, 0.9, 0.5, 1),  # both better, bigger best: grow
        (1.0, 0.5, 0.9, -1),  # both better, smaller best: shrink
        (1.0, 2.0, 3.0, 0),  # local minimum: keep
        (1.0, 1.0, 1.0, 0),  # flat: keep
    ],
)
def test_simulated_gradient_truth_table(e: float, es: float, eb: float, d: int) -> None:
    assert sg_direction(e, es, eb) == d


def test_activation_fake_gradient_is_minus_alpha_squared_times_direction() -> None:
    torch.manual_seed(0)
    x = torch.rand(1000) * 4.0
    for alpha, expect in ((0.01, 1), (5.0, -1)):  # far too small -> grow; far too big -> shrink
        q = LLSQActQuantizer(4, alpha=alpha).train()
        q(x.clone().requires_grad_()).sum().backward()
        assert q.alpha.grad is None  # alpha is detached: no loss gradient
        es, e, eb = (_brute_error(x, a, 0, 15) for a in (alpha / 2, alpha, 2 * alpha))
        assert sg_direction(e, es, eb) == expect
        q.after_backward()
        assert q.alpha.grad.item() == pytest.approx(-(alpha**2) * expect)
        q.after_backward()  # the decision is consumed once
        assert q.alpha.grad.item() == pytest.approx(-(alpha**2) * expect)


def test_eq2_error_and_search_use_the_chosen_norm_l() -> None:
    """Eq. 2's objective is E|x_q - x|^l, l in {1, 2}. By hand for k = 2 (q in 0..3) and
    x = [0.2, 0.7, 0.7, 1.3]: |x_q - x| is [.2, .2, .2, .2] at alpha = 0.5,
    [.05, .05, .05, .55] at 0.25 and [.2, .3, .3, .3] at 1.0, so l = 1 gives errors
    (0.2, 0.175, 0.275) -> shrink, l = 2 gives (0.04, 0.0775, 0.0775) -> keep."""
    x = torch.tensor([0.2, 0.7, 0.7, 1.3])
    for norm, errs, d in ((1, (0.2, 0.175, 0.275), -1), (2, (0.04, 0.0775, 0.0775), 0)):
        q = LLSQActQuantizer(2, alpha=0.5, norm=norm).train()
        got = [float(q.error(x.double(), a)) for a in (0.5, 0.25, 1.0)]
        assert got == pytest.approx(errs, abs=1e-6)
        assert got == pytest.approx([_brute_error(x, a, 0, 3, norm) for a in (0.5, 0.25, 1.0)])
        q(x)
        q.after_backward()  # alpha.grad = -alpha^2 d, none when d = 0
        assert (0 if q.alpha.grad is None else -float(q.alpha.grad) / 0.25) == d


def test_sg_with_sgd_reaches_near_optimal_scale() -> None:
    """Oracle: a brute-force scan of the Eq. 2 error."""
    torch.manual_seed(1)
    x = torch.randn(2000).clamp_min(0)  # half-normal, like ReLU outputs
    grid = torch.linspace(0.02, 1.0, 491)
    errs = [_brute_error(x[:800], float(a), 0, 15) for a in grid]
    best = min(errs)
    best_a = float(grid[errs.index(best)])
    for start in (0.02, 0.9):
        q = LLSQActQuantizer(4, alpha=start).train()
        for _ in range(150):  # 1/alpha moves by lr per grow step: ~90 steps from 0.02
            q(x)
            q.alpha.grad = None
            q.after_backward()
            if q.alpha.grad is not None:
                with torch.no_grad():  # plain SGD, lr = 0.5
                    q.alpha -= 0.5 * q.alpha.grad
        # The search only compares alpha with alpha/2 and 2 alpha, so it settles within a
        # factor-2 bracket of the Eq. 2 optimum ("near-optimal", Section 3.3), not on it.
        a = float(q.scale())
        got = _brute_error(x[:800], a, 0, 15)
        assert best_a / 2 <= a <= 2 * best_a
        assert got <= 2.0 * best, (start, a, got, best)
        assert got < 0.2 * _brute_error(x[:800], start, 0, 15)


def test_weight_sg_is_ema_toward_double_or_half() -> None:
    w = torch.randn(500)
    q = LLSQWeightQuantizer(4, alpha=1e-3).train()  # far too small: grow
    q(w)
    q.after_backward()
    assert q.alpha.item() == pytest.approx(0.99 * 1e-3 + 0.01 * 2e-3)
    q = LLSQWeightQuantizer(4, alpha=10.0, ema_decay=0.9).train()  # far too big: shrink
    q(w)
    q.after_backward()
    assert q.alpha.item() == pytest.approx(0.9 * 10.0 + 0.1 * 5.0)


def test_ema_mode_tracks_max_calibrated_scale() -> None:
    q = LLSQActQuantizer(4, alpha=1.0, update="ema", ema_decay=0.5).train()
    x = torch.tensor([0.0, 3.2])
    q(x)
    assert q.alpha.item() == pytest.approx(0.5 * 1.0 + 0.5 * 3.2 / 16)
    q.after_backward()
    assert q.alpha.grad is None  # no simulated gradient in EMA mode


def test_ema_mode_signed_grid_divides_by_2_pow_k_minus_1() -> None:
    """Table 2's EMA alternative on a signed grid: the max-calibrated scale is max|x| / 2^(k-1)
    (module docstring), here 3.2 / 8 = 0.4 at k = 4."""
    q = LLSQWeightQuantizer(4, alpha=1.0, update="ema", ema_decay=0.5).train()
    q(torch.tensor([-3.2, 1.0]))
    assert q.alpha.item() == pytest.approx(0.5 * 1.0 + 0.5 * 3.2 / 8)


def test_simulated_gradient_grows_the_magnitude_of_a_negative_alpha() -> None:
    """An SGD step moves |alpha| by lr * alpha^2 * d even after an overshoot left alpha < 0
    (the forward uses |alpha|): d = +1 here, so |alpha| must grow."""
    q = LLSQActQuantizer(4, alpha=0.01).train()
    with torch.no_grad():
        q.alpha.fill_(-0.01)  # |alpha| far too small for x: grow
    q(torch.rand(1000) * 4.0)
    q.after_backward()
    lr = 10.0
    with torch.no_grad():
        q.alpha -= lr * q.alpha.grad
    assert abs(q.alpha.item()) == pytest.approx(0.01 + lr * 0.01**2, rel=1e-5)


def test_calibration_initialisation_and_pow2() -> None:
    w = torch.tensor([0.1, -0.8, 0.3])
    q = LLSQWeightQuantizer(4)
    q.calibrate(w)
    assert q.alpha.item() == pytest.approx(0.8 / 8)  # max|w| / (Qp + 1)
    q.calibrate(w * 10)  # initialisation only: a learned scale is never overwritten
    assert q.alpha.item() == pytest.approx(0.8 / 8)
    a4, a2 = LLSQActQuantizer(4), LLSQActQuantizer(2)
    a4.calibrate(torch.tensor([0.0, 3.2]))
    a2.calibrate(torch.tensor([0.0, 3.2]))
    assert a4.alpha.item() == pytest.approx(3.2 / 16)
    assert a2.alpha.item() == pytest.approx(3.2 / 6)  # max / (2 Qp) below 4 bits
    p = LLSQActQuantizer(4, alpha=0.3, pow2=True)
    assert float(p.scale()) == 0.5  # rounded up to a power of two


def test_param_group_and_bad_arguments() -> None:
    assert LLSQActQuantizer(4).param_group() == "scale"
    with pytest.raises(ValueError, match="update"):
        LLSQActQuantizer(4, update="adam")
    with pytest.raises(ValueError, match="norm"):
        LLSQWeightQuantizer(4, norm=3)
    with pytest.raises(ValueError, match="alpha"):
        LLSQWeightQuantizer(4, alpha=-1.0)
    with pytest.raises(ValueError, match="bits"):
        LLSQWeightQuantizer(0)
