"""Quantizer base, STE helpers, QuantConv2d/QuantLinear/QuantAct and the whole-model hooks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from quant import hooks
from quant.methods.base import Quantizer, check_bits, grad_scale, round_ste
from quant.methods.lsq import LSQActQuantizer, LSQWeightQuantizer
from quant.methods.pact import PACT
from quant.methods.sawb import SAWB
from quant.modules import QuantAct, QuantConv2d, QuantLinear


class Counting(Quantizer):
    """A test quantizer that records the hooks called on it."""

    def __init__(self, bits: int = 4) -> None:
        super().__init__(bits, signed=True)
        self.calls: list[object] = []
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def on_epoch_start(self, epoch: int) -> None:
        self.calls.append(("epoch", epoch))

    def after_backward(self) -> None:
        self.calls.append("after_backward")

    def calibrate(self, x: torch.Tensor) -> None:
        self.calls.append(("calibrate", tuple(x.shape)))


def test_ste_helpers() -> None:
    x = torch.tensor([0.2, 1.6, -2.4], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [0.0, 2.0, -2.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    s = torch.tensor(3.0, requires_grad=True)
    z = grad_scale(s, 0.25)
    assert z.item() == 3.0
    (2 * z).backward()
    assert s.grad.item() == pytest.approx(0.5)


def test_base_hooks_are_noops_and_bits_checked() -> None:
    q = Counting()
    assert Quantizer.regularization_loss(q).item() == 0.0
    assert Quantizer.param_group(q) == "weights"
    with pytest.raises(ValueError, match="bits=0"):
        Counting(0)
    with pytest.raises(ValueError, match="bits"):
        check_bits(True)
    with pytest.raises(ValueError, match="signed"):
        Quantizer(2, signed=1)  # type: ignore[arg-type]


def test_quant_conv_from_float_matches_functional_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, groups=1, bias=True)
    x = torch.randn(2, 3, 7, 7)
    plain = QuantConv2d.from_float(conv)
    assert torch.equal(plain(x), conv(x))
    assert plain.weight is conv.weight  # shared, as torch.ao's from_float
    assert plain.weight_bits is None
    assert plain.act_bits is None
    wq, iq = SAWB(2), LSQActQuantizer(4, signed=None)
    q = QuantConv2d.from_float(conv, wq, iq)
    assert (q.weight_bits, q.act_bits) == (2, 4)
    expected = nn.functional.conv2d(iq(x), SAWB(2)(conv.weight), conv.bias, 2, 1)
    assert torch.allclose(q(x), expected)
    assert isinstance(q, nn.Conv2d)
    dw = nn.Conv2d(4, 4, 3, groups=4, padding=1, bias=False)
    qdw = QuantConv2d.from_float(dw, SAWB(3))
    assert qdw.groups == 4
    assert qdw.bias is None
    assert qdw.weight_bits == 3
    with pytest.raises(ValueError, match="Conv2d"):
        QuantConv2d.from_float(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="weight_quantizer"):
        QuantConv2d.from_float(conv, nn.ReLU())  # type: ignore[arg-type]


def test_quant_linear_and_weight_calibration_at_build() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    wq = LSQWeightQuantizer(4)
    q = QuantLinear.from_float(lin, wq)
    # LSQ weight step initialised from the weights at build time: 2<|w|>/sqrt(Qp).
    assert wq.step.item() == pytest.approx(2 * lin.weight.abs().mean().item() / 7**0.5, rel=1e-6)
    x = torch.randn(2, 5)
    assert torch.allclose(q(x), nn.functional.linear(x, wq(lin.weight), lin.bias))
    assert q.weight_bits == 4
    assert q.act_bits is None
    assert isinstance(q, nn.Linear)
    direct = QuantLinear(5, 3, weight_quantizer=SAWB(2))
    assert direct.weight_bits == 2


def test_quant_act_exposes_output_bits_and_keeps_pre() -> None:
    a = QuantAct(PACT(3, alpha_init=2.0))
    assert a.act_bits == 3
    assert not hasattr(a, "weight_bits")
    x = torch.tensor([-1.0, 0.5, 5.0])
    assert a(x).tolist() == PACT(3, alpha_init=2.0)(x).tolist()
    b = QuantAct(LSQActQuantizer(2), pre=nn.ReLU())
    b.quantizer.calibrate(torch.ones(1, 1))
    assert b(torch.tensor([[-3.0, 0.6]])).min().item() == 0.0
    with pytest.raises(ValueError, match="quantizer"):
        QuantAct(nn.ReLU())  # type: ignore[arg-type]


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        QuantConv2d(3, 4, 3, padding=1, weight_quantizer=LSQWeightQuantizer(4),
                    input_quantizer=LSQActQuantizer(4, signed=None)),
        nn.BatchNorm2d(4),
        QuantAct(PACT(2, alpha_init=3.0, alpha_decay=0.01)),
        nn.Flatten(),
        QuantLinear(4 * 4 * 4, 2, weight_quantizer=SAWB(2)),
        QuantAct(PACT(2, alpha_init=5.0)),
    )


def test_calibrate_initialises_from_first_batch_and_keeps_bn_stats() -> None:
    m = _model()
    x = torch.randn(8, 3, 4, 4) * 3
    bn = m[1]
    before = (bn.running_mean.clone(), bn.running_var.clone())
    m.train()
    hooks.calibrate(m, x)
    iq = m[0].input_quantizer
    assert iq.signed  # auto: the image has negative values
    assert iq.step.item() == pytest.approx(2 * x.abs().mean().item() / 7**0.5, rel=1e-5)
    assert torch.equal(bn.running_mean, before[0])
    assert torch.equal(bn.running_var, before[1])
    assert m.training
    assert bn.momentum == 0.1
    c = Counting()
    seq = nn.Sequential(QuantLinear(3, 2, input_quantizer=c))
    hooks.calibrate(seq, torch.ones(5, 3))
    assert ("calibrate", (5, 3)) in c.calls
    hooks.on_epoch_start(seq, 3)
    hooks.after_backward(seq)
    assert c.calls[-2:] == [("epoch", 3), "after_backward"]
    with pytest.raises(ValueError, match="epoch"):
        hooks.on_epoch_start(seq, -1)


def test_regularization_loss_sums_quantizers() -> None:
    m = _model()
    assert hooks.regularization_loss(m).item() == pytest.approx(0.5 * 0.01 * 9.0)
    assert hooks.regularization_loss(nn.Linear(2, 2)).item() == 0.0


def test_param_groups_treat_clip_and_scale_as_the_papers_say() -> None:
    m = _model()
    groups = {g["name"]: g for g in hooks.param_groups(m, lr=0.1, weight_decay=5e-4,
                                                        clip_decay=1e-3)}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    all_ids = [i for s in ids.values() for i in s]
    assert len(all_ids) == len(set(all_ids)) == len(list(m.parameters()))  # each exactly once
    assert groups["weights"]["weight_decay"] == 5e-4
    assert ids["scale"] == {id(m[0].weight_quantizer.step), id(m[0].input_quantizer.step)}
    assert groups["scale"]["weight_decay"] == 0.0  # no weight decay on LSQ steps
    assert ids["clip"] == {id(m[5].quantizer.alpha)}
    assert groups["clip"]["weight_decay"] == 1e-3
    # the PACT alpha whose L2 is already in regularization_loss() is not decayed twice
    assert ids["clip_l2_in_loss"] == {id(m[2].quantizer.alpha)}
    assert groups["clip_l2_in_loss"]["weight_decay"] == 0.0
    default = {g["name"]: g for g in hooks.param_groups(m, lr=0.1, weight_decay=5e-4)}
    assert default["clip"]["weight_decay"] == 5e-4  # clip_decay=None -> weight_decay
    torch.optim.SGD(hooks.param_groups(m, 0.1), momentum=0.9)  # accepted by torch
    with pytest.raises(ValueError, match="lr"):
        hooks.param_groups(m, lr=0.0)
    with pytest.raises(ValueError, match="clip_decay"):
        hooks.param_groups(m, lr=0.1, clip_decay=-1.0)


def test_training_step_moves_quantizer_parameters() -> None:
    m = _model()
    x = torch.randn(8, 3, 4, 4) * 3
    hooks.calibrate(m, x)
    opt = torch.optim.SGD(hooks.param_groups(m, lr=0.1), momentum=0.0)
    before = [p.detach().clone() for p in m.parameters()]
    loss = (m(x) - 2.0).square().mean() + hooks.regularization_loss(m)
    loss.backward()
    hooks.after_backward(m)
    opt.step()
    moved = [not torch.equal(b, p) for b, p in zip(before, m.parameters())]
    assert sum(moved) >= len(moved) - 1  # everything learns (a PACT alpha may see no clipping)
    assert torch.isfinite(m(x)).all()


def test_state_dict_round_trip() -> None:
    m = _model()
    hooks.calibrate(m, torch.randn(8, 3, 4, 4))
    sd = m.state_dict()
    assert "0.input_quantizer.initialized" in sd
    m2 = _model()
    m2.load_state_dict(sd)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(m.eval()(x), m2.eval()(x))


@settings(max_examples=50, deadline=None)
@given(xs=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=20),
       g=st.floats(1e-4, 1.0))
def test_ste_helpers_are_bit_exact_in_the_forward_pass(xs: list[float], g: float) -> None:
    x = torch.tensor(xs, requires_grad=True)
    assert torch.equal(grad_scale(x, g), x.detach())
    assert torch.equal(round_ste(x), torch.round(x.detach()))
