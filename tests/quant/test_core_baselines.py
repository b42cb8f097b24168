"""DoReFa and WRPN quantizers (notes 2.7) against formulas computed independently in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.methods.dorefa import DoReFaActQuantizer, DoReFaWeightQuantizer
from quant.methods.wrpn import WRPNActQuantizer, WRPNWeightQuantizer


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_dorefa_weights_formula(bits: int) -> None:
    w = np.array([-2.0, -0.7, -0.1, 0.0, 0.3, 1.0, 0.05])
    t = np.tanh(w)
    n = 2**bits - 1
    expected = 2 * np.round((t / (2 * np.abs(t).max()) + 0.5) * n) / n - 1
    got = DoReFaWeightQuantizer(bits)(torch.tensor(w)).numpy()
    assert np.allclose(got, expected)
    assert np.allclose(got[0], -1.0)  # the largest |w| maps to the outer level


def test_dorefa_one_bit_is_sign_times_mean_abs() -> None:
    w = torch.tensor([-0.5, 0.0, 0.25, 1.25], requires_grad=True)
    y = DoReFaWeightQuantizer(1)(w)
    assert y.tolist() == [-0.5, 0.5, 0.5, 0.5]  # sign(0) = +1, E|w| = 0.5
    y.sum().backward()
    assert torch.allclose(w.grad, torch.full((4,), 0.5))  # STE through sign, times E|w|


def test_dorefa_weight_gradient_is_autograd_of_tanh_normalisation() -> None:
    torch.manual_seed(0)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    DoReFaWeightQuantizer(2)(w).sum().backward()
    w2 = w.detach().clone().requires_grad_(True)
    t = torch.tanh(w2)
    (2 * (t / (2 * t.abs().max()) + 0.5) - 1).sum().backward()  # round replaced by identity
    assert torch.allclose(w.grad, w2.grad)


@pytest.mark.parametrize("cls", [DoReFaActQuantizer, WRPNActQuantizer])
def test_activations_clip_to_unit_interval(cls: type) -> None:
    x = torch.tensor([-1.0, 0.1, 0.2, 0.5, 0.9, 1.0, 3.0], requires_grad=True)
    y = cls(2)(x)  # levels {0, 1/3, 2/3, 1}
    assert np.allclose(y.detach().numpy(), [0, 0, 1 / 3, 2 / 3, 1, 1, 1])
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_wrpn_weights_sign_plus_magnitude_bits() -> None:
    w = torch.tensor([-3.0, -0.6, -0.4, 0.2, 0.7, 2.0], requires_grad=True)
    y = WRPNWeightQuantizer(2)(w)  # 1 sign + 1 magnitude bit: {-1, 0, 1}
    assert y.tolist() == [-1, -1, 0, 0, 1, 1]
    y.sum().backward()
    assert w.grad.tolist() == [0, 1, 1, 1, 1, 0]  # zero where the [-1, 1] clamp saturates
    y4 = WRPNWeightQuantizer(4)(torch.tensor([0.5, -0.2, 0.93]))  # step 1/7
    assert np.allclose(y4.numpy(), np.round(np.array([0.5, -0.2, 0.93]) * 7) / 7)
    with pytest.raises(ValueError, match="bits"):
        WRPNWeightQuantizer(1)


def test_wrpn_weight_gain_puts_the_mse_optimal_levels_at_one() -> None:
    """After w <- g w the grid {-1, 0, 1} is the best ternary grid for w: no other outer level
    a (grid {-a, 0, a}) quantizes the rescaled weights with less squared error."""
    torch.manual_seed(0)
    w = torch.randn(4000, dtype=torch.float64) * 0.03  # trained-network scale: all round to 0
    q = WRPNWeightQuantizer(2)
    assert not q(w).any()
    g = q.weight_gain(w)
    assert 15 < g < 40  # 1 / (about 1.2 sigma), the ternary optimum of a Gaussian
    v = w * g
    sse = float((q(v) - v).square().sum())
    for a in (0.8, 0.9, 1.1, 1.25):
        other = float((a * q(v / a) - v).square().sum())
        assert sse <= other
    assert q.weight_gain(torch.zeros(5)) == 1.0


def test_wrpn_weight_gain_of_a_big_layer_uses_a_sample_close_to_the_full_optimum() -> None:
    from quant.methods.sawb import optimal_scale
    from quant.methods.wrpn import GAIN_SAMPLE

    torch.manual_seed(1)
    w = torch.distributions.Laplace(0.0, 0.02).sample((4 * GAIN_SAMPLE + 1000,))
    full = 1.0 / float(optimal_scale(w, 2, "with_zero"))
    assert WRPNWeightQuantizer(2).weight_gain(w) == pytest.approx(full, rel=0.02)


def test_wrpn_weight_gain_sample_spans_every_output_channel() -> None:
    """The sample of a big layer is evenly strided, so channels of different magnitude (here
    rows scaled 0.005 .. 0.05) all enter it; the gain stays within 2 % of the full optimum."""
    from quant.methods.sawb import optimal_scale

    torch.manual_seed(2)
    w = torch.randn(64, 2100) * torch.linspace(0.005, 0.05, 64)[:, None]  # > 4 * GAIN_SAMPLE
    full = 1.0 / float(optimal_scale(w.flatten(), 2, "with_zero"))
    assert WRPNWeightQuantizer(2).weight_gain(w) == pytest.approx(full, rel=0.02)


def test_wrpn_recipe_rescales_onto_the_grid_without_changing_the_float_function() -> None:
    """quantize(.., "wrpn") multiplies each quantized layer's latent weights by its gain; the
    BN after each conv divides it out, so the float network computes the same function."""
    from quant import quantize
    from quant.modules import QuantConv2d
    from workloads import zoo

    torch.manual_seed(0)
    model = zoo.get("digits_cnn", width=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize(model, "wrpn", w_bits=2, a_bits=2)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # not mutated
    convs = [(n, m) for n, m in q.named_modules() if isinstance(m, QuantConv2d)]
    assert [n for n, m in convs if m.weight_quantizer is not None] == ["features.3", "features.7"]
    rescaled = zoo.get("digits_cnn", width=2)
    rescaled.load_state_dict(before)
    for n, m in convs:
        if m.weight_quantizer is None:  # the first layer stays full precision, not rescaled
            assert torch.equal(m.weight, before[f"{n}.weight"])
            continue
        g = m.weight_quantizer.weight_gain(before[f"{n}.weight"])
        torch.testing.assert_close(m.weight.detach(), before[f"{n}.weight"] * g)
        assert (m.quantized_weight() != 0).float().mean() > 0.2  # the grid is used
        rescaled.get_submodule(n).weight.data.mul_(g)
    x = torch.randn(16, 1, 8, 8)
    model.train()
    rescaled.train()
    torch.testing.assert_close(rescaled(x), model(x), rtol=1e-4, atol=1e-4)


def test_wrpn_w2a2_digits_trains_well_above_chance(tmp_path) -> None:
    """The table's WRPN W2A2 run (2x wide, from scratch; here 4 epochs instead of 20) learns the
    digits. Without the weight rescale every ternary weight was 0 and the network sat at 10 %."""
    from quant import train as qtrain

    torch.set_num_threads(1)
    res = qtrain.trained_digits_result("wrpn", 2, 2, tmp_path, fp_epochs=4)
    m = res.metrics
    assert (m["width"], m["epochs"], m["init_from"]) == (2, 4, None)  # WRPN trains from scratch
    assert res.test_accuracy > 0.9  # measured 0.969 (seeds 1, 2: 0.975, 0.956); chance is 0.1
    layers = {r["name"]: r for r in m["layers"]}
    assert layers["features.3"]["weight_bits"] == 2
    assert layers["features.5"]["act_bits"] == 2
    wq = res.model.features[3].weight_quantizer
    assert (wq(res.model.features[3].weight) != 0).float().mean() > 0.2


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 8),
       xs=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=30))
def test_idempotent_and_on_grid(bits: int, xs: list[float]) -> None:
    x = torch.tensor(xs, dtype=torch.float64)
    for q in (WRPNWeightQuantizer(bits), WRPNActQuantizer(bits), DoReFaActQuantizer(bits)):
        y = q(x)
        assert torch.allclose(q(y), y, rtol=0, atol=1e-12)
    n = 2**bits - 1
    yd = DoReFaWeightQuantizer(bits)(x).numpy()
    codes = (yd + 1) / 2 * n
    assert np.allclose(codes, np.round(codes), atol=1e-9)  # on {2i/n - 1}
    assert yd.min() >= -1 - 1e-12
    assert yd.max() <= 1 + 1e-12


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 8), alpha=st.floats(0.1, 8.0),
       xs=st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=20))
def test_integer_grid_interface_reproduces_forward(bits: int, alpha: float,
                                                   xs: list[float]) -> None:
    """forward(x) == codes(x) * scale() with codes integers in [qmin, qmax] (quant.integer)."""
    from quant.methods.lsq import LSQActQuantizer, LSQWeightQuantizer
    from quant.methods.pact import PACT

    x = torch.tensor([xs])
    lsq_a = LSQActQuantizer(bits)
    lsq_w = LSQWeightQuantizer(bits)
    for q in (lsq_a, lsq_w):
        q.calibrate(torch.ones(1, 1))
        with torch.no_grad():
            q.step.fill_(alpha / 7)
    quantizers = (PACT(bits, alpha_init=alpha), lsq_a, lsq_w, WRPNWeightQuantizer(bits),
                  WRPNActQuantizer(bits), DoReFaActQuantizer(bits))
    for q in quantizers:
        c = q.codes(x)
        assert torch.equal(c, torch.round(c))
        assert int(c.min()) >= q.qmin
        assert int(c.max()) <= q.qmax
        assert torch.allclose(q(x), c * q.scale(), rtol=1e-6, atol=1e-6), type(q).__name__
