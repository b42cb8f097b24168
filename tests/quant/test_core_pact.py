"""PACT (SysML 2019 Eq. 1-3) against hand-computed values and the stated gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.methods.pact import PACT


def _pact(bits: int, alpha: float) -> PACT:
    q = PACT(bits, alpha_init=alpha)
    return q


def test_default_init_is_the_papers_10() -> None:
    q = PACT(2)
    assert q.alpha.item() == 10.0
    assert q.param_group() == "clip"
    assert q.signed is False
    assert q.bits == 2


def test_forward_matches_eq1_eq2_by_hand() -> None:
    # alpha = 3, k = 2 -> scale alpha / (2^k - 1) = 1: levels {0, 1, 2, 3}.
    x = torch.tensor([-1.0, 0.4, 0.6, 1.4, 2.9, 3.0, 5.0])
    y = _pact(2, 3.0)(x)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 3.0, 3.0, 3.0]
    # k = 3, alpha = 7: step 1; k = 1, alpha = 2: levels {0, 2}.
    assert _pact(3, 7.0)(torch.tensor([2.4, 6.6, 8.0])).tolist() == [2.0, 7.0, 7.0]
    assert _pact(1, 2.0)(torch.tensor([0.9, 1.1, -3.0])).tolist() == [0.0, 2.0, 0.0]


def test_clip_equals_eq1_closed_form() -> None:
    alpha = 2.5
    x = torch.linspace(-4, 6, 101)
    eq1 = 0.5 * (x.abs() - (x - alpha).abs() + alpha)
    q = PACT(16, alpha_init=alpha)  # 16 bits: quantization error < alpha / 65535
    assert torch.allclose(q(x), eq1, atol=alpha / 65535)


def test_gradients_follow_eq3_and_ste() -> None:
    torch.manual_seed(0)
    alpha = 1.5
    q = _pact(2, alpha)
    x = torch.cat([torch.rand(197) * 4 - 1, torch.tensor([0.0, alpha, -0.0])])
    x.requires_grad_(True)
    g = torch.randn(200)
    q(x).backward(g)
    xd = x.detach()
    # Eq. 3: d y_q / d alpha = 1 where x >= alpha else 0.
    assert torch.allclose(q.alpha.grad, g[xd >= alpha].sum())
    # STE: d y_q / d x = 1 on [0, alpha), 0 elsewhere.
    mask = ((xd >= 0) & (xd < alpha)).float()
    assert torch.equal(x.grad, g * mask)


def test_alpha_gradient_has_no_quantization_error_term() -> None:
    # All x below alpha: Eq. 3 says d y_q / d alpha = 0 even though y_q depends on alpha via
    # the scale (an LSQ-style term would be non-zero here).
    q = _pact(2, 4.0)
    x = torch.tensor([0.3, 1.7, 2.2, 3.1])
    q(x).sum().backward()
    assert float(q.alpha.grad) == 0.0


def test_alpha_is_clamped_positive() -> None:
    q = PACT(2, alpha_init=1.0, min_alpha=0.01)
    with torch.no_grad():
        q.alpha.fill_(-0.5)
    y = q(torch.tensor([0.5, 2.0]))
    assert q.alpha.item() == pytest.approx(0.01)
    assert torch.isfinite(y).all()
    assert y.max() <= 0.01 + 1e-9


def test_l2_regularizer() -> None:
    q = PACT(2, alpha_init=4.0, alpha_decay=0.1)
    loss = q.regularization_loss()
    assert loss.item() == pytest.approx(0.5 * 0.1 * 16.0)
    loss.backward()
    assert float(q.alpha.grad) == pytest.approx(0.1 * 4.0)  # = SGD weight decay 0.1
    assert PACT(2).regularization_loss().item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"bits": 0}, "bits"), ({"bits": 17}, "bits"), ({"bits": 2.0}, "bits"),
     ({"bits": 2, "alpha_init": -1.0}, "alpha_init"), ({"bits": 2, "alpha_decay": -1}, "decay")],
)
def test_bad_arguments_raise(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PACT(**kwargs)


@settings(max_examples=40, deadline=None)
@given(
    bits=st.integers(1, 8),
    alpha=st.floats(0.1, 20.0),
    xs=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=30),
)
def test_idempotent_and_grid_fixed_points(bits: int, alpha: float, xs: list[float]) -> None:
    q = _pact(bits, alpha)
    x = torch.tensor(xs, dtype=torch.float64)
    y = q(x)
    assert torch.equal(q(y), y)
    n = 2**bits - 1
    a = q.alpha.item()  # alpha as stored (float32)
    grid = torch.arange(n + 1, dtype=torch.float64) * (a / n)
    assert torch.allclose(q(grid), grid, rtol=0, atol=1e-9 * a)
    assert (y >= 0).all()
    assert (y <= a * (1 + 1e-9)).all()
