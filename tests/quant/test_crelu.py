"""CReLU + multi-level binary weights (Huang et al. 2019): Eq. 1-5 activations, Eq. 6-8 greedy
binarization, Eq. 10 refined gradient (independent implementations and finite differences)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.methods.crelu import CReLUActQuantizer, MultiLevelBinaryWeightQuantizer


# ---- activations ------------------------------------------------------------------------------
def test_crelu_forward_and_eq2_gradients() -> None:
    q = CReLUActQuantizer(8, clip_init=2.0)  # 8 bits: fine grid, test the clamp itself
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0, 3.0, 7.0], requires_grad=True)
    y = q(x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 0.0, 0.5, 2.0, 2.0, 2.0]),
                               atol=2 / 255 / 2, rtol=0)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # d/dx = 1 on (0, c]
    assert q.clip.grad.item() == 2.0  # d/dc = 1 on (c, inf): two inputs


def test_linear_quantizer_eq4_hand_values() -> None:
    q = CReLUActQuantizer(2, clip_init=3.0)  # (2^2 - 1) / 3 = 1 level per unit
    x = torch.tensor([-1.0, 0.4, 0.6, 1.49, 2.2, 5.0])
    assert q(x).tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 3.0]


def test_log_quantizer_eq5_hand_values_and_zero_code() -> None:
    q = CReLUActQuantizer(2, mode="log", clip_init=8.0)  # codes 0, 2, 4, 8
    x = torch.tensor([-3.0, 0.0, 1.0, 1.99, 2.0, 3.9, 4.0, 7.9, 8.0, 100.0])
    assert q(x).tolist() == [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0]


def test_log_quantizer_equals_literal_eq5_above_underflow() -> None:
    torch.manual_seed(0)
    for bits, c in ((2, 8.0), (3, 4.0), (4, 1.0)):
        q = CReLUActQuantizer(bits, mode="log", clip_init=c)
        x = torch.rand(2000) * 2 * c
        n = np.log2(c)
        lit = 2.0 ** np.clip(np.floor(np.log2(x.numpy())), n - 2**bits, n)  # Eq. 5 as printed
        smallest = c * 2.0 ** -(2**bits - 2)
        keep = x.numpy() >= smallest  # below the smallest power our zero code takes over
        y = q(x).detach().numpy()
        np.testing.assert_allclose(y[keep], lit[keep])
        assert (y[~keep] == 0).all()
        assert len(set(y.tolist())) <= 2**bits  # fits k bits


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 6), c=st.floats(0.05, 20.0), mode=st.sampled_from(["linear", "log"]))
def test_idempotent_and_at_most_2_pow_k_levels(bits: int, c: float, mode: str) -> None:
    q = CReLUActQuantizer(bits, mode=mode, clip_init=c)
    x = torch.linspace(-c, 2 * c, 3001, dtype=torch.float64)
    with torch.no_grad():
        y = q(x)
        assert torch.allclose(q(y), y, rtol=1e-12, atol=0)  # q(q(x)) == q(x)
    assert torch.unique(y).numel() <= 2**bits
    assert float(y.min()) == 0.0
    assert float(y.max()) == pytest.approx(c)


def test_ste_and_regularisation() -> None:
    q = CReLUActQuantizer(2, clip_init=3.0, alpha_decay=0.01)
    x = torch.tensor([0.4, 2.2, 5.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0]  # STE through the rounding
    assert q.clip.grad.item() == 1.0  # only through Eq. 2, not through the scale
    assert q.regularization_loss().item() == pytest.approx(0.01 * 9.0)  # lambda c^2 (Eq. 3)
    assert q.param_group() == "clip"
    with torch.no_grad():
        q.clip.fill_(-1.0)  # a too-large L2 step: the clamp stays usable (|c|, >= 1e-4)
    assert q(torch.tensor([5.0])).item() == pytest.approx(1.0)


# ---- multi-level binarization -------------------------------------------------------------
def test_two_level_forward_hand_computed() -> None:
    q = MultiLevelBinaryWeightQuantizer(1, levels=2, per_channel=False)
    w = torch.tensor([0.5, -0.3, 0.1, -0.9])
    # alpha_0 = 0.45, b_0 = [+,-,+,-]; r_1 = [0.05, 0.15, -0.35, -0.45]; alpha_1 = 0.25
    torch.testing.assert_close(q(w), torch.tensor([0.7, -0.2, 0.2, -0.7]))
    assert q.bits == 2
    assert q.levels == 2


def test_residual_energy_identity_and_error_decreases_with_m() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3, dtype=torch.float64)
    errs = []
    for m in range(1, 6):
        q = MultiLevelBinaryWeightQuantizer(levels=m)
        alphas, _ = q.decompose(w)
        errs.append(float(((q(w) - w) ** 2).sum()))
        # ||r_m||^2 = ||w||^2 - n sum_k alpha_k^2 per channel (b_k = sign(r_k) is optimal)
        n = w[0].numel()
        energy = (w**2).sum((1, 2, 3)) - n * sum(a.flatten() ** 2 for a in alphas)
        torch.testing.assert_close(energy.sum(), torch.tensor(errs[-1], dtype=torch.float64))
    assert all(a > b for a, b in itertools.pairwise(errs)), errs


def _eq10(w: np.ndarray, g: np.ndarray, clip: float = 1.0) -> np.ndarray:
    """Eq. 10 for one level, one filter: s(w_i)/n sum_j g_j s(w_j) + g_i 1{|w_i|<=1} alpha."""
    s = np.where(w >= 0, 1.0, -1.0)
    alpha = np.abs(w).mean()
    return s / w.size * (g * s).sum() + g * (np.abs(w) <= clip) * alpha


def _multi_level_backward(w: np.ndarray, g: np.ndarray, m: int, clip: float) -> np.ndarray:
    """Hand-written reverse pass through r_(k+1) = r_k - alpha_k sign(r_k), w~ = sum alpha_k b_k,
    with the rules of Eq. 10 at every level (sign' = 1{|r| <= clip}, alpha_k = mean|r_k|)."""
    rs, alphas, signs = [w], [], []
    for _ in range(m):
        r = rs[-1]
        b = np.where(r >= 0, 1.0, -1.0)
        a = np.abs(r).mean()
        alphas.append(a)
        signs.append(b)
        rs.append(r - a * b)
    gr = np.zeros_like(w)  # dL/dr_m: r_m is not used
    for k in reversed(range(m)):
        r, a, b = rs[k], alphas[k], signs[k]
        up = g - gr  # w~ gets +alpha_k b_k, r_(k+1) gets -alpha_k b_k
        ga = (up * b).sum()
        gb = up * a
        gr = gr + gb * (np.abs(r) <= clip) + ga * b / w.size
    return gr


@pytest.mark.parametrize("per_channel", [True, False])
def test_one_level_gradient_is_eq10(per_channel: bool) -> None:
    torch.manual_seed(0)
    w = (torch.randn(4, 3, 3, 3, dtype=torch.float64) * 0.8).requires_grad_()
    g = torch.randn_like(w)
    q = MultiLevelBinaryWeightQuantizer(levels=1, per_channel=per_channel)
    (q(w) * g).sum().backward()
    wn, gn = w.detach().numpy(), g.numpy()
    if per_channel:
        want = np.stack([_eq10(wn[c].ravel(), gn[c].ravel()).reshape(wn[c].shape)
                         for c in range(4)])
    else:
        want = _eq10(wn.ravel(), gn.ravel()).reshape(wn.shape)
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-12, atol=1e-12)
    assert np.abs(want).max() > 0.01
    assert (np.abs(wn) > 1).any()


def test_eq10_ste_window_is_closed_at_one() -> None:
    """Eq. 10's indicator is 1{|w_i| <= 1}: a weight exactly at +-1 still gets the STE term
    g_i alpha, one just outside gets none (random weights never hit the tie)."""
    w = torch.tensor([-1.0, -0.5, 1.0, 1.5], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    (MultiLevelBinaryWeightQuantizer(levels=1, per_channel=False)(w) * g).sum().backward()
    want = _eq10(w.detach().numpy(), g.numpy())  # alpha = 1; common term s_i/4 * 9
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(want, [-2.25 + 1.0, -2.25 + 2.0, 2.25 + 4.0, 2.25], atol=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_multi_level_gradient_matches_hand_written_recursion(m: int) -> None:
    torch.manual_seed(m)
    w = (torch.randn(60, dtype=torch.float64) * 0.7).requires_grad_()
    g = torch.randn(60, dtype=torch.float64)
    q = MultiLevelBinaryWeightQuantizer(levels=m, per_channel=False)
    (q(w) * g).sum().backward()
    want = _multi_level_backward(w.detach().numpy(), g.numpy(), m, 1.0)
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_closed_ste_window_gives_the_exact_derivative(m: int) -> None:
    """With ste_clip = 0 the backward is the true derivative of the forward away from sign
    flips, so it must agree with central finite differences of L = <g, w~(w)>."""
    torch.manual_seed(10 + m)
    w = torch.randn(40, dtype=torch.float64)
    g = torch.randn(40, dtype=torch.float64)
    q = MultiLevelBinaryWeightQuantizer(levels=m, ste_clip=0.0, per_channel=False)
    wg = w.clone().requires_grad_()
    (q(wg) * g).sum().backward()
    h = 1e-7
    fd = torch.empty_like(w)
    for i in range(w.numel()):
        e = torch.zeros_like(w)
        e[i] = h
        fd[i] = ((q(w + e) * g).sum() - (q(w - e) * g).sum()) / (2 * h)
    # the residuals must not cross zero inside +-h for the finite difference to be smooth
    torch.testing.assert_close(wg.grad, fd, rtol=1e-5, atol=1e-7)


def test_detached_backward_keeps_only_the_ste_term() -> None:
    torch.manual_seed(0)
    w = (torch.randn(30, dtype=torch.float64) * 0.9).requires_grad_()
    g = torch.randn(30, dtype=torch.float64)
    q = MultiLevelBinaryWeightQuantizer(levels=1, backward="detached", per_channel=False)
    (q(w) * g).sum().backward()
    wn = w.detach().numpy()
    want = g.numpy() * (np.abs(wn) <= 1) * np.abs(wn).mean()
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-12)
    full = _eq10(wn, g.numpy())
    assert np.abs(full - want).max() > 1e-3  # the mismatch Eq. 10 corrects


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="levels"):
        MultiLevelBinaryWeightQuantizer(levels=0)
    with pytest.raises(ValueError, match="backward"):
        MultiLevelBinaryWeightQuantizer(backward="xnor")
    with pytest.raises(ValueError, match="mode"):
        CReLUActQuantizer(2, mode="exp")
    with pytest.raises(ValueError, match="clip_init"):
        CReLUActQuantizer(2, clip_init=0.0)
