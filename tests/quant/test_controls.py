"""Negative controls (quant/controls.py): each one really swaps its formula for the known-wrong
variant (checked against a hand-computed oracle of the wrong formula on a tiny tensor), and
with no control active every quantizer is bit-identical to before the block."""

from __future__ import annotations

import math

import pytest
import torch

from quant import controls
from quant.methods.crelu import MultiLevelBinaryWeightQuantizer
from quant.methods.llsq import LLSQActQuantizer
from quant.methods.lsq import LSQActQuantizer, LSQWeightQuantizer
from quant.methods.pact import PACT
from quant.methods.sawb import SAWB, sawb_scale
from quant.recipes import recipes


def _lsq_step_grad(q: LSQActQuantizer | LSQWeightQuantizer, v: torch.Tensor,
                   g_out: torch.Tensor) -> float:
    q.step.grad = None
    (q(v) * g_out).sum().backward()
    assert q.step.grad is not None
    return float(q.step.grad)


def test_registry_names_recipes_and_equations() -> None:
    assert len(controls.CONTROLS) == 8
    for name, c in controls.CONTROLS.items():
        assert c.name == name
        assert c.recipe in recipes()
        assert "Eq." in c.breaks or "Sec." in c.breaks
    assert controls.active_controls() == ()


def test_unknown_control_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"control='nope'.*allowed: lsq_grad_scale_one"), \
            controls.swapped_in("nope"):
        pass  # pragma: no cover
    assert controls.active_controls() == ()


def test_nested_blocks_restore_what_was_active() -> None:
    with controls.swapped_in(controls.SAWB_MAX_ABS):
        with controls.swapped_in(controls.LSQ_INIT_FACTOR_ONE):
            assert controls.active_controls() == (controls.LSQ_INIT_FACTOR_ONE,
                                                  controls.SAWB_MAX_ABS)
        assert controls.active_controls() == (controls.SAWB_MAX_ABS,)
        with pytest.raises(RuntimeError), controls.swapped_in(controls.LSQ_GRAD_SCALE_ONE):
            raise RuntimeError("boom")
        assert controls.active_controls() == (controls.SAWB_MAX_ABS,)
    assert controls.active_controls() == ()


def test_lsq_grad_scale_one_drops_g() -> None:
    torch.manual_seed(0)
    w, g_out = torch.randn(4, 3, 3, 3), torch.randn(4, 3, 3, 3)
    q = LSQWeightQuantizer(2)
    q.calibrate(w)
    right = _lsq_step_grad(q, w, g_out)
    with controls.swapped_in(controls.LSQ_GRAD_SCALE_ONE):
        wrong = _lsq_step_grad(q, w, g_out)
    # Sec. 2.2: g = 1 / sqrt(N_W Q_P); the control multiplies by 1 instead
    assert wrong == pytest.approx(right * math.sqrt(w.numel() * q.qp), rel=1e-5)


def test_lsq_n_whole_batch_shrinks_g_by_sqrt_batch() -> None:
    torch.manual_seed(1)
    x, g_out = torch.rand(8, 2, 3, 3) * 3, torch.randn(8, 2, 3, 3)
    q = LSQActQuantizer(2)
    q.calibrate(x)
    right = _lsq_step_grad(q, x, g_out)
    with controls.swapped_in(controls.LSQ_N_WHOLE_BATCH):
        assert q.n_elements(x) == x.numel()
        wrong = _lsq_step_grad(q, x, g_out)
    assert q.n_elements(x) == x[0].numel()
    assert wrong == pytest.approx(right / math.sqrt(8), rel=1e-5)
    w = torch.randn(5, 5)  # weights count every element either way
    qw = LSQWeightQuantizer(2)
    with controls.swapped_in(controls.LSQ_N_WHOLE_BATCH):
        assert qw.n_elements(w) == 25


def test_lsq_init_factor_one_halves_the_initial_step() -> None:
    x = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    q = LSQWeightQuantizer(3)
    q.calibrate(x)
    # <|x|> = 0.875, Q_P = 3
    assert float(q.step.detach()) == pytest.approx(2 * 0.875 / math.sqrt(3))
    with controls.swapped_in(controls.LSQ_INIT_FACTOR_ONE):
        q.calibrate(x)
    assert float(q.step.detach()) == pytest.approx(0.875 / math.sqrt(3))


def test_sawb_max_abs_replaces_eq7() -> None:
    torch.manual_seed(2)
    w = torch.randn(64)
    q = SAWB(2)
    q(w)
    assert torch.equal(q.alpha, sawb_scale(w, *q.coefficients))  # type: ignore[misc]
    with controls.swapped_in(controls.SAWB_MAX_ABS):
        out = q(w)
    assert float(q.alpha) == float(w.abs().max())
    assert float(out.abs().max()) == pytest.approx(float(w.abs().max()))


def test_sawb_alpha_fixed_keeps_the_calibrated_scale() -> None:
    torch.manual_seed(3)
    w = torch.randn(64)
    q = SAWB(2)
    with controls.swapped_in(controls.SAWB_ALPHA_FIXED):
        q.calibrate(w)  # right after the build
        first = float(q.alpha)
        q(3 * w)  # the weights grew: Eq. 7 per step would triple alpha
        assert float(q.alpha) == first
    q(3 * w)
    assert float(q.alpha) == pytest.approx(3 * first, rel=1e-5)


def test_pact_scale_in_graph_adds_the_quantization_error_term() -> None:
    x = torch.tensor([0.1, 0.7, 1.3, 2.2, 3.5, -0.4])
    g_out = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.5, 1.0])

    def alpha_grad() -> tuple[float, torch.Tensor]:
        q = PACT(2, alpha_init=3.0)
        y = q(x)
        (y * g_out).sum().backward()
        assert q.alpha.grad is not None
        return float(q.alpha.grad), y.detach()

    right, y_right = alpha_grad()
    assert right == pytest.approx(1.5)  # Eq. 3: only x >= alpha (3.5) passes g
    with controls.swapped_in(controls.PACT_SCALE_IN_GRAPH):
        wrong, y_wrong = alpha_grad()
    assert torch.equal(y_right, y_wrong)  # the forward is the same
    # d/d alpha of round(y/s) s through s = alpha/3: (round(y/s) - y/s) / 3 per element in
    # (0, alpha) (0 for clipped and negative ones)
    s = 3.0 / 3
    inside = (x > 0) & (x < 3.0)
    extra = float(((torch.round(x / s) - x / s) / 3 * g_out)[inside].sum())
    assert wrong == pytest.approx(right + extra, abs=1e-6)
    assert abs(extra) > 0.1


def test_llsq_sg_sign_flipped_moves_alpha_the_wrong_way() -> None:
    x = torch.linspace(0.0, 1.0, 101).reshape(1, -1)

    def grad_and_direction() -> tuple[float, int]:
        q = LLSQActQuantizer(2, alpha=2.0)  # far too large: every level but 0 is above 1
        q.train()
        q(x.clone().requires_grad_(True)).sum().backward()
        d = q._direction
        q.after_backward()
        assert q.alpha.grad is not None
        return float(q.alpha.grad), d

    right, d_right = grad_and_direction()
    assert d_right == -1  # shrink
    assert right == pytest.approx(4.0)  # grad = -alpha^2 d: SGD shrinks alpha
    with controls.swapped_in(controls.LLSQ_SG_SIGN_FLIPPED):
        wrong, d_wrong = grad_and_direction()
    assert d_wrong == 1
    assert wrong == pytest.approx(-4.0)


def test_crelu_backward_detached_equals_the_detached_backward() -> None:
    torch.manual_seed(4)
    w, g_out = torch.randn(3, 2, 3, 3) * 0.5, torch.randn(3, 2, 3, 3)

    def grad(q: MultiLevelBinaryWeightQuantizer) -> torch.Tensor:
        wl = w.clone().requires_grad_(True)
        (q(wl) * g_out).sum().backward()
        assert wl.grad is not None
        return wl.grad

    refined = grad(MultiLevelBinaryWeightQuantizer(levels=2))
    detached = grad(MultiLevelBinaryWeightQuantizer(levels=2, backward="detached"))
    with controls.swapped_in(controls.CRELU_BACKWARD_DETACHED):
        wrong = grad(MultiLevelBinaryWeightQuantizer(levels=2))
    assert torch.equal(wrong, detached)
    assert not torch.allclose(wrong, refined)


def _all_outputs_and_grads() -> list[torch.Tensor]:
    """Forward values and every gradient of one quantizer of each controlled method."""
    torch.manual_seed(5)
    x = torch.rand(4, 3, 4, 4) * 3
    w = torch.randn(3, 3, 3, 3) * 0.3
    out: list[torch.Tensor] = []
    for q, t in ((LSQActQuantizer(2), x), (LSQWeightQuantizer(2), w), (PACT(2, alpha_init=2.0), x),
                 (SAWB(2), w), (LLSQActQuantizer(2, alpha=4.0), x),
                 (MultiLevelBinaryWeightQuantizer(levels=2), w)):
        q.train()
        q.calibrate(t)
        tl = (1.5 * t).requires_grad_(True)  # the tensor moved since calibration
        y = q(tl)
        (y * torch.cos(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape)).sum().backward()
        q.after_backward()
        out += [y.detach(), tl.grad] + [p.grad for p in q.parameters() if p.grad is not None]
        out += [b.clone() for b in q.buffers()]
    return out


def test_no_control_active_is_bit_identical_before_and_after_each_block() -> None:
    before = _all_outputs_and_grads()
    for name in controls.CONTROLS:
        with controls.swapped_in(name):
            during = _all_outputs_and_grads()
        assert any(not torch.equal(a, b) for a, b in zip(before, during)), name
        after = _all_outputs_and_grads()
        assert all(torch.equal(a, b) for a, b in zip(before, after)), name
