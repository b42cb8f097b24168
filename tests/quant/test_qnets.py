"""Quantization Networks (Yang et al. 2019): Eq. 6 soft quantizer, Eq. 7-10 gradients, Eq. 11
hard steps, temperature schedule and the k-means initialisation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from quant.methods.qnets import (
    QNActQuantizer,
    QNWeightQuantizer,
    default_levels,
    kmeans_1d,
)

LEVELS7 = (-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0)


def _set(q, alpha: float, beta: float, biases) -> None:
    with torch.no_grad():
        q.alpha.fill_(alpha)
        q.beta.fill_(beta)
        q.biases.copy_(torch.as_tensor(biases, dtype=torch.float32))
        q.initialized.fill_(True)


def _eq11(x: np.ndarray, ys, alpha: float, beta: float, b) -> np.ndarray:
    """Eq. 11 written out: alpha * (sum_i s_i A(beta x - b_i) - o), A(0) = 1, o = -Y_0.
    The step arguments are formed in float32 like the module's, so ties decide alike."""
    ys = sorted(ys)
    x32, beta32, b32 = x.astype(np.float32), np.float32(beta), np.asarray(b, dtype=np.float32)
    out = np.full(x.shape, ys[0], dtype=np.float64)  # -o = Y_0
    for i in range(1, len(ys)):
        out += (ys[i] - ys[i - 1]) * (beta32 * x32 - b32[i - 1] >= 0)
    return alpha * out


def test_default_level_sets() -> None:
    assert default_levels(1, True) == (-1.0, 1.0)
    assert default_levels(2, True) == (-1.0, 0.0, 1.0)  # the paper's "ternary, 2 bits"
    assert default_levels(5, True) == tuple(float(v) for v in range(-15, 16))
    assert default_levels(2, False) == (0.0, 1.0, 2.0, 3.0)


def test_hard_output_is_eq11_exactly_for_an_arbitrary_level_set() -> None:
    q = QNWeightQuantizer(3, levels=LEVELS7)
    b = [-3.1, -1.4, -0.6, 0.4, 1.7, 2.9]
    _set(q, alpha=0.37, beta=2.5, biases=b)
    q.eval()
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    x = torch.cat([x, torch.tensor(b, dtype=torch.float64) / 2.5])  # exactly on the thresholds
    with torch.no_grad():
        got = q(x.float()).double().numpy()
    want = _eq11(x.float().numpy(), LEVELS7, 0.37, 2.5, b)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert set(np.round(got / 0.37, 5)) <= set(LEVELS7)


def test_soft_approaches_hard_monotonically_as_temperature_grows() -> None:
    q = QNWeightQuantizer(3, levels=LEVELS7, arg_clamp=None)
    b = [-3.0, -1.5, -0.5, 0.5, 1.5, 3.0]
    _set(q, alpha=1.0, beta=1.0, biases=b)
    x = torch.linspace(-5, 5, 4001)
    far = torch.stack([(x - bi).abs() for bi in b]).min(0).values >= 0.05
    hard = q.eval()(x)
    q.train()
    devs = []
    for t in (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0):
        q.temperature.fill_(t)
        with torch.no_grad():
            devs.append(float((q(x) - hard).abs()[far].max()))
    assert all(a > b for a, b in itertools.pairwise(devs)), devs
    assert devs[-1] < 1e-6 * 2
    assert devs[0] > 0.3


def test_autograd_matches_eq7_to_eq10() -> None:
    torch.manual_seed(0)
    q = QNWeightQuantizer(3, levels=LEVELS7, arg_clamp=None, learn_biases=True)  # Eq. 10
    b = [-3.0, -1.5, -0.5, 0.5, 1.5, 3.0]
    _set(q, alpha=0.8, beta=1.3, biases=b)
    q.temperature.fill_(3.0)
    x = (torch.randn(50) * 2).requires_grad_()
    gy = torch.randn(50)
    (q(x) * gy).sum().backward()
    # Eq. 7-10 with g_d^i = alpha s_i sigma(T (beta x_d - b_i)), computed in numpy
    xs, g_out = x.detach().double().numpy(), gy.double().numpy()
    alpha, beta, t = 0.8, 1.3, 3.0
    s = np.diff(LEVELS7)
    bb = np.array(b)
    sig = 1 / (1 + np.exp(-t * (beta * xs[:, None] - bb[None, :])))
    g = alpha * s[None, :] * sig
    common = g * (alpha * s[None, :] - g) / (alpha * s[None, :])  # (D, n)
    dx = g_out * (t * beta * common).sum(1)  # Eq. 7
    y = alpha * ((s[None, :] * sig).sum(1) - 4.0)
    dalpha = (g_out * y / alpha).sum()  # Eq. 8
    dbeta = (g_out * (t * xs * common.sum(1))).sum()  # Eq. 9
    db = -(g_out[:, None] * t * common).sum(0)  # Eq. 10
    np.testing.assert_allclose(x.grad.double().numpy(), dx, rtol=1e-4, atol=1e-6)
    assert q.alpha.grad.item() == pytest.approx(dalpha, rel=1e-4)
    assert q.beta.grad.item() == pytest.approx(dbeta, rel=1e-4)
    np.testing.assert_allclose(q.biases.grad.double().numpy(), db, rtol=1e-4, atol=1e-6)


def test_kmeans_initialisation_puts_biases_between_cluster_centres() -> None:
    torch.manual_seed(0)
    w = torch.randn(3000) * 0.05
    q = QNWeightQuantizer(3, levels=LEVELS7)
    q.calibrate(w)
    p, qmax = 4.0, float(w.abs().max())
    assert q.beta.item() == pytest.approx(5 * p / (4 * qmax), rel=1e-5)  # beta = 5p / 4q
    assert q.alpha.item() == pytest.approx(1 / q.beta.item(), rel=1e-5)
    c = kmeans_1d(w * q.beta.detach(), 7).double()
    bias = q.biases.detach().double()
    assert bool((c[:-1] < bias).all() and (bias < c[1:]).all())
    torch.testing.assert_close(bias, (c[1:] + c[:-1]) / 2)
    # the centres are a Lloyd fixed point: each is the mean of the values nearest to it
    v = (w * q.beta.detach()).double()
    idx = torch.searchsorted((c[1:] + c[:-1]) / 2, v, right=True)
    for k in range(7):
        assert float(v[idx == k].mean()) == pytest.approx(float(c[k]), rel=1e-6, abs=1e-9)


def test_binary_set_bias_zero_and_t1_backward() -> None:
    q = QNWeightQuantizer(1, arg_clamp=None)
    q.calibrate(torch.randn(200))
    assert q.biases.tolist() == [0.0]
    q.temperature.fill_(50.0)
    x = torch.linspace(-1, 1, 11, requires_grad=True)
    q(x).sum().backward()
    beta, alpha = q.beta.item(), q.alpha.item()
    sig = torch.sigmoid(beta * x.detach())  # T = 1 in the backward pass (Section 4.1)
    torch.testing.assert_close(x.grad, alpha * 2 * beta * sig * (1 - sig))
    with torch.no_grad():
        fwd = q(x)  # but the forward is still the T = 50 sigmoid
    torch.testing.assert_close(fwd, alpha * (2 * torch.sigmoid(50 * beta * x.detach()) - 1))


def test_temperature_schedule_and_cap() -> None:
    q = QNActQuantizer(2, t0=10.0, t_max=35.0)
    q.on_epoch_start(0)
    assert q.temperature.item() == 10.0
    q.on_epoch_start(2)
    assert q.temperature.item() == 30.0
    q.on_epoch_start(9)
    assert q.temperature.item() == 35.0
    with pytest.raises(ValueError, match="epoch"):
        q.on_epoch_start(-1)


def test_temperature_before_the_first_epoch_is_t0_capped() -> None:
    """T = (epoch + 1) T0 holds from construction: epoch 0 trains at T0 (Section 4.1,
    T = epoch x T0 with epochs counted from 1), capped at t_max."""
    assert QNActQuantizer(2, t0=10.0).temperature.item() == 10.0
    assert QNWeightQuantizer(2, t0=50.0, t_max=20.0).temperature.item() == 20.0


def test_sigmoid_argument_is_clamped_symmetrically() -> None:
    """The official code clamps T(beta x - b) to +-10 (notes 2.5): far from every threshold the
    soft output is alpha (sum_i s_i sigma(+-10) - o), computed by hand here."""
    q = QNWeightQuantizer(2, arg_clamp=10.0)  # {-1, 0, 1}: s = (1, 1), o = 1
    _set(q, alpha=1.0, beta=1.0, biases=[-0.5, 0.5])
    q.temperature.fill_(1000.0)
    with torch.no_grad():
        y = q.train()(torch.tensor([-100.0, 100.0], dtype=torch.float64))
    sig = 1 / (1 + math.exp(-10.0))
    torch.testing.assert_close(y, torch.tensor([2 * (1 - sig) - 1, 2 * sig - 1],
                                               dtype=torch.float64), rtol=0, atol=1e-7)


def test_beta_init_uses_max_abs_level_for_an_asymmetric_set() -> None:
    """beta = 5p / (4q) with p the max ABSOLUTE value of Y (Section 4.1): p = 4 for
    {-4, -2, 0, 1}, not max(Y) = 1."""
    q = QNWeightQuantizer(2, levels=(-4.0, -2.0, 0.0, 1.0))
    w = torch.tensor([-0.8, -0.3, 0.1, 0.5])
    q.calibrate(w)
    assert q.beta.item() == pytest.approx(5 * 4.0 / (4 * 0.8), rel=1e-6)


def test_binary_activation_biases_come_from_kmeans_not_zero() -> None:
    """Binary weights use b = 0, but binary activations {0, 1} take b from k-means like every
    other activation set (Section 4.1, "b_i is obtained by clustering")."""
    a = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.2, 3.0, 3.2])
    q = QNActQuantizer(1)
    q.calibrate(a)
    c = kmeans_1d(a * q.beta.detach(), 2).double()
    assert float(c[0]) == pytest.approx(float(a[:5].mean() * q.beta.detach()), rel=1e-5)
    assert q.biases.item() == pytest.approx(float((c[0] + c[1]) / 2), rel=1e-5)
    assert q.biases.item() > 0.0


def test_activation_calibration_on_relu_outputs() -> None:
    torch.manual_seed(0)
    a = torch.relu(torch.randn(5000))  # half of the values are exactly 0
    q = QNActQuantizer(2)
    q.calibrate(a)
    assert q.offset == 0.0
    assert not q.biases.requires_grad  # fixed activation biases, as the official code
    b = q.biases.tolist()
    assert all(x < y for x, y in itertools.pairwise(b))
    q.eval()
    out = q(a) / q.alpha.item()
    assert set(torch.round(out, decimals=4).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert q(torch.zeros(3)).abs().max().item() == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2\\*\\*bits"):
        QNWeightQuantizer(2, levels=LEVELS7)
    with pytest.raises(ValueError, match="levels"):
        QNWeightQuantizer(3, levels=(1.0, 1.0))
    with pytest.raises(ValueError, match="t0"):
        QNWeightQuantizer(2, t0=-1.0)
    with pytest.raises(ValueError, match="arg_clamp"):
        QNWeightQuantizer(2, arg_clamp=math.inf)
