"""LSQ (ICLR 2020 Eq. 1-5, Section 2.2, Appendix B): values, Eq. 3 / Eq. 5 gradients, gradscale,
initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.methods.lsq import LSQActQuantizer, LSQWeightQuantizer, lsq_levels


def _weights(bits: int, step: float) -> LSQWeightQuantizer:
    q = LSQWeightQuantizer(bits)
    q.calibrate(torch.ones(1))
    with torch.no_grad():
        q.step.fill_(step)
    return q


def _eq3(v: torch.Tensor, s: float, qn: int, qp: int) -> torch.Tensor:
    """LSQ Eq. 3, written independently of the implementation."""
    r = v / s
    inside = -r + torch.round(r)
    return torch.where(r <= -qn, torch.full_like(r, -qn),
                       torch.where(r >= qp, torch.full_like(r, qp), inside))


@pytest.mark.parametrize(("bits", "signed", "expected"),
                         [(2, True, (2, 1)), (2, False, (0, 3)), (4, True, (8, 7)),
                          (4, False, (0, 15)), (8, True, (128, 127))])
def test_qn_qp(bits: int, signed: bool, expected: tuple[int, int]) -> None:
    assert lsq_levels(bits, signed) == expected


def test_forward_eq1_eq2_by_hand() -> None:
    q = _weights(3, 0.5)  # Qn = 4, Qp = 3
    v = torch.tensor([-3.0, -0.74, 0.26, 1.2, 5.0])
    assert q(v).tolist() == [-2.0, -0.5, 0.5, 1.0, 1.5]


def test_step_gradient_is_eq3_times_gradscale() -> None:
    torch.manual_seed(0)
    bits, s = 3, 0.4
    v = torch.randn(24) * 1.2
    qn, qp = lsq_levels(bits, True)
    g = 1 / math.sqrt(v.numel() * qp)  # N_W = 24
    expected = _eq3(v, s, qn, qp)
    assert (expected == -qn).any()
    assert (expected == qp).any()
    for i in range(v.numel()):  # d v_hat_i / d s, one element at a time
        q = _weights(bits, s)
        out = torch.zeros(v.numel())
        out[i] = 1.0
        q(v).backward(out)
        assert float(q.step.grad) == pytest.approx(g * float(expected[i]), rel=1e-5, abs=1e-7)


def test_input_gradient_is_eq5_mask() -> None:
    q = _weights(2, 1.0)  # Qn = 2, Qp = 1
    v = torch.tensor([-3.0, -1.5, 0.2, 0.9, 1.4, 2.5], requires_grad=True)
    q(v).sum().backward()
    assert v.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_activation_gradscale_counts_features_of_one_example() -> None:
    q = LSQActQuantizer(4)  # unsigned: Qp = 15
    x = torch.rand(5, 3, 2, 2) * 2
    q.calibrate(x)
    s = q.step.item()
    q(x).sum().backward()
    n_f = 3 * 2 * 2
    expected = _eq3(x, s, 0, 15).sum() / math.sqrt(n_f * 15)
    assert float(q.step.grad) == pytest.approx(float(expected), rel=1e-5)


def test_activation_gradscale_of_an_unbatched_input_counts_all_its_features() -> None:
    """A 1-D activation is one unbatched example (torch's convention, e.g. nn.Linear on (F,)):
    N_F is all of its F = 12 features, so g = 1 / sqrt(12 Q_P) (Section 2.2)."""
    q = LSQActQuantizer(4)
    x = torch.rand(12) * 2
    q.calibrate(x)
    s = q.step.item()
    q(x).sum().backward()
    expected = _eq3(x, s, 0, 15).sum() / math.sqrt(12 * 15)
    assert float(q.step.grad) == pytest.approx(float(expected), rel=1e-5)


def test_step_init_from_weights_and_first_batch() -> None:
    torch.manual_seed(1)
    w = torch.randn(64)
    q = LSQWeightQuantizer(4)
    q.calibrate(w)
    assert q.step.item() == pytest.approx(2 * float(w.abs().mean()) / math.sqrt(7), rel=1e-6)
    a = LSQActQuantizer(2)
    x = torch.rand(8, 10) * 3
    a(x)  # lazily initialised from the first batch
    assert a.step.item() == pytest.approx(2 * float(x.abs().mean()) / math.sqrt(3), rel=1e-6)
    a(x * 100)  # and not re-initialised afterwards
    assert a.step.item() == pytest.approx(2 * float(x.abs().mean()) / math.sqrt(3), rel=1e-6)
    assert a.param_group() == "scale"


def test_auto_sign_for_inputs_that_can_be_negative() -> None:
    a = LSQActQuantizer(3, signed=None)
    a.calibrate(torch.tensor([[-1.0, 2.0]]))
    assert a.signed
    assert (a.qn, a.qp) == (4, 3)
    b = LSQActQuantizer(3, signed=None)
    b.calibrate(torch.tensor([[0.0, 2.0]]))
    assert not b.signed
    assert (b.qn, b.qp) == (0, 7)


def test_step_clamped_positive_and_bad_bits() -> None:
    q = _weights(2, 1.0)
    with torch.no_grad():
        q.step.fill_(-3.0)
    assert torch.isfinite(q(torch.randn(10))).all()
    assert q.step.item() > 0
    with pytest.raises(ValueError, match="bits"):
        LSQWeightQuantizer(1)
    with pytest.raises(ValueError, match="signed"):
        LSQActQuantizer(2, signed="yes")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(2, 8), step=st.floats(0.01, 5.0), signed=st.booleans(),
       xs=st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=30))
def test_idempotent_and_grid_fixed_points(bits: int, step: float, signed: bool,
                                          xs: list[float]) -> None:
    q = LSQActQuantizer(bits, signed=signed)
    q.calibrate(torch.ones(1, 1))
    with torch.no_grad():
        q.step.fill_(step)
    x = torch.tensor([xs], dtype=torch.float64)
    y = q(x)
    assert torch.equal(q(y), y)
    qn, qp = lsq_levels(bits, signed)
    grid = torch.arange(-qn, qp + 1, dtype=torch.float64)[None] * q.step.item()
    assert torch.allclose(q(grid), grid, rtol=0, atol=1e-9)


def test_clip_points_follow_the_strict_inequalities_of_eq3_and_eq5() -> None:
    # v/s exactly at -Qn and Qp: Eq. 5 gives 0 (the interval is open), Eq. 3 gives -Qn / Qp.
    for i, expected in ((0, -2.0), (1, 1.0)):
        q = _weights(2, 0.5)  # Qn = 2, Qp = 1: clip points v = -1.0 and v = 0.5
        v = torch.tensor([-1.0, 0.5], requires_grad=True)
        out = torch.zeros(2)
        out[i] = 1.0
        q(v).backward(out)
        assert v.grad.tolist() == [0.0, 0.0]
        assert q.step.grad.item() == pytest.approx(expected / math.sqrt(2 * 1))
