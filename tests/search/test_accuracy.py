"""Accuracy models: the proxy's noise tables against closed forms / independent quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize
from scipy.stats import norm

from dse.search.accuracy import (
    MAX_BITS,
    MeasuredAccuracy,
    ProxyAccuracy,
    activation_nsr,
    from_dict,
    noise_gain_sensitivity,
    weight_nsr,
)

GAUSS = norm.ppf((np.arange(16384) + 0.5) / 16384)
GAUSS_TABLE = weight_nsr(GAUSS)


@pytest.mark.parametrize(("bits", "max_mse"), [(1, 0.3634), (2, 0.1188), (3, 0.03744),
                                               (4, 0.01154)])
def test_gaussian_weights_match_max_1960_optimal_uniform_quantizer(bits, max_mse):
    """Eq. 6 optimum on N(0,1) = Max (1960)'s optimum uniform quantizer MSE (2^b levels)."""
    assert GAUSS_TABLE[bits - 1] == pytest.approx(max_mse, rel=0.01)


def test_uniform_weights_closed_form():
    """U(-1, 1) with 2^b levels spanning it: MSE = step^2/12 -> relative 4^-b exactly."""
    u = (np.arange(16384) + 0.5) / 8192 - 1.0
    t = weight_nsr(u)
    for b in range(1, 7):
        assert t[b - 1] == pytest.approx(4.0 ** -b, rel=0.02)


def test_above_table_six_db_per_bit_and_zero_tensor():
    t = GAUSS_TABLE
    assert len(t) == MAX_BITS
    for b in range(9, MAX_BITS + 1):
        assert 10 * math.log10(t[b - 2] / t[b - 1]) == pytest.approx(6.0206, rel=1e-6)
    assert weight_nsr(np.zeros(10)) == (0.0,) * MAX_BITS
    with pytest.raises(ValueError, match="no elements"):
        weight_nsr(np.zeros(0))


def _pact_mse_quad(bits: int) -> float:
    """Independent oracle: min over alpha of the PACT quantizer MSE on max(0, z), by quadrature."""
    levels = 2 ** bits

    def mse(alpha: float) -> float:
        step = alpha / (levels - 1)
        total = integrate.quad(lambda x: (x - alpha) ** 2 * norm.pdf(x), alpha, np.inf)[0]
        for k in range(levels):  # interval rounding to level k
            lo, hi = max(0.0, (k - 0.5) * step), min(alpha, (k + 0.5) * step)
            total += integrate.quad(lambda x, q=k * step: (x - q) ** 2 * norm.pdf(x), lo, hi)[0]
        return total

    res = optimize.minimize_scalar(mse, bounds=(0.05, 6.0), method="bounded",
                                   options={"xatol": 1e-5})
    return res.fun / 0.5  # E[max(0, z)^2] = 1/2


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_activation_table_matches_quadrature(bits):
    assert activation_nsr(bits) == pytest.approx(_pact_mse_quad(bits), rel=0.02)


def test_activation_bits_checked():
    with pytest.raises(ValueError, match="a_bits=0"):
        activation_nsr(0)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, MAX_BITS - 1))
def test_more_bits_less_noise(b):
    t = GAUSS_TABLE
    assert t[b] < t[b - 1]
    assert activation_nsr(b + 1) < activation_nsr(b)


def test_proxy_is_sensitivity_weighted_sum_in_db():
    rng = np.random.default_rng(1)
    w = {"a": rng.standard_normal(2000), "b": rng.laplace(size=3000)}
    p = ProxyAccuracy.from_weights(w, {"a": 1.0, "b": 3.0}, "custom")
    bits = {"a": (2, 4), "b": (8, 2)}
    nsr = 1.0 * (weight_nsr(w["a"])[1] + activation_nsr(4)) \
        + 3.0 * (weight_nsr(w["b"])[7] + activation_nsr(2))
    assert p(bits) == pytest.approx(-10 * math.log10(nsr), rel=1e-9)
    assert p.label.startswith("proxy:")
    # round trip through the JSON the study stores
    q = from_dict(p.to_dict())
    assert q(bits) == pytest.approx(p(bits), rel=1e-12)
    with pytest.raises(ValueError, match="bits missing"):
        p({"a": (2, 2)})
    with pytest.raises(ValueError, match="w_bits"):
        p({"a": (0, 2), "b": (2, 2)})


def test_uniform_proxy_prefers_bits_where_they_help(tiny_accuracy):
    base = {n: (2, 2) for n in tiny_accuracy.layers}
    up = dict(base, c2=(4, 4))
    assert tiny_accuracy(up) > tiny_accuracy(base)


def test_bad_proxy_inputs():
    with pytest.raises(ValueError, match="sensitivity"):
        ProxyAccuracy({"a": (0.1,) * MAX_BITS}, {"a": -1.0})
    with pytest.raises(ValueError, match="different layers"):
        ProxyAccuracy({"a": (0.1,) * MAX_BITS}, {"b": 1.0})
    with pytest.raises(ValueError, match="kind"):
        from_dict({"kind": "oracle"})


def test_noise_gain_on_linear_networks():
    """Closed forms: noise injected at the last layer reaches the logits unchanged (gain 1); an
    orthogonal layer after it preserves relative noise too (gain 1), a rank-1 one filters it."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(64, 64))
    net = nn.Sequential(nn.Linear(64, 64, bias=False), nn.Linear(64, 64, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(q)
    g = noise_gain_sensitivity(net, {"l0": "0", "l1": "1"}, (64,), batch=256)
    assert g["l1"] == pytest.approx(1.0, rel=0.05)
    assert g["l0"] == pytest.approx(1.0, rel=0.05)
    # rank-1 signal path: h = W0 x lies along u and W1 = u u^T / |u|^2 passes it whole, but
    # isotropic noise injected into h keeps only 1/64 of its power -> gain 1/64 (closed form)
    u = torch.randn(64, 1)
    with torch.no_grad():
        net[0].weight.copy_(u @ torch.randn(1, 64))
        net[1].weight.copy_(u @ u.T / (u.T @ u))
    g = noise_gain_sensitivity(net, {"l0": "0", "l1": "1"}, (64,), batch=512)
    assert g["l1"] == pytest.approx(1.0, rel=0.05)
    assert g["l0"] == pytest.approx(1 / 64, rel=0.15)


def test_measured_accuracy_caches_in_memory_and_on_disk(tmp_path):
    calls = []

    def evaluate(bits):
        calls.append(dict(bits))
        return 0.5 + 0.01 * sum(w + a for w, a in bits.values())

    path = tmp_path / "acc.json"
    m = MeasuredAccuracy(evaluate, label="digits", cache_path=path)
    assert m.label.startswith("measured:")
    b = {"x": (2, 2), "y": (4, 8)}
    assert m(b) == pytest.approx(0.66)
    assert m(dict(reversed(list(b.items())))) == pytest.approx(0.66)
    assert len(calls) == 1
    m2 = MeasuredAccuracy(evaluate, cache_path=path)  # a second process reads the file
    assert m2(b) == pytest.approx(0.66)
    assert len(calls) == 1
