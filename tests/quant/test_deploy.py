"""quant.deploy: integer tensors end to end (int8 weights, int32 biases, saturating accumulators,
precomputed multiplier/shift), identical to quant.integer's export, saved and loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import quant
from quant import deploy as qdeploy
from quant import grids as qgrids
from quant import hooks
from quant import integer as qinteger
from quant.data import digits
from quant.integer import to_integer
from quant.methods.llsq import LLSQActQuantizer, LLSQWeightQuantizer
from quant.modules import QuantLinear
from workloads import zoo


@pytest.fixture(scope="module")
def llsqf_digits() -> tuple[nn.Module, torch.Tensor]:
    """digits_cnn under llsqf W4A4, 60 SGD steps on the digits training split (eval mode)."""
    torch.manual_seed(0)
    q = quant.quantize(zoo.get("digits_cnn"), "llsqf", 4, 4).train()
    tr = digits("train")
    hooks.calibrate(q, tr.images[:64])
    opt = torch.optim.SGD(hooks.param_groups(q, 0.05, 5e-4), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        idx = torch.randint(0, len(tr), (32,), generator=g)
        loss = nn.functional.cross_entropy(q(tr.images[idx]), tr.targets[idx])
        opt.zero_grad()
        loss.backward()
        hooks.after_backward(q)
        opt.step()
    return q.eval(), digits("test").images


@pytest.mark.parametrize("acc_bits", [8, 16, 32])
def test_deployed_equals_the_integer_export(llsqf_digits, acc_bits: int) -> None:
    model, x = llsqf_digits
    dep = qdeploy.deploy(model, acc_bits=acc_bits)
    ref = to_integer(model, acc_bits=acc_bits, accumulate="final")
    assert torch.equal(dep(x), ref(x))
    if acc_bits == 8:  # saturation happened and is reproduced
        assert ref.overflow_count > 0
        assert not torch.equal(dep(x), qdeploy.deploy(model, acc_bits=32)(x))


def test_everything_between_input_and_output_is_integer(llsqf_digits) -> None:
    model, x = llsqf_digits
    dep = qdeploy.deploy(model, acc_bits=16)
    dep(x)
    assert dep.dtypes_seen
    assert all(not dt.is_floating_point for dt in dep.dtypes_seen)
    macs = [op for op in dep.ops if op["op"] in ("conv", "linear")]
    assert len(macs) == 4
    assert all(op["weight"].dtype == torch.int8 for op in macs)  # 4-bit codes in int8
    assert all(op["bias"].dtype == torch.int32 for op in macs)
    assert all(op["mant"].dtype == torch.int64 for op in dep.ops if op["op"] == "requant")
    assert dep.ops[0]["op"] == "quantize"
    assert dep.ops[-1]["op"] == "dequant"


def test_multipliers_are_not_recomputed_at_run_time(llsqf_digits,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = llsqf_digits
    dep = qdeploy.deploy(model)
    before = dep(x)

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("quantize_multiplier called at run time")

    monkeypatch.setattr(qdeploy, "quantize_multiplier", forbidden)
    monkeypatch.setattr(qinteger, "quantize_multiplier", forbidden)
    monkeypatch.setattr(qgrids, "quantize_multiplier", forbidden)
    assert torch.equal(dep(x), before)


def test_save_and_load_round_trip(llsqf_digits, tmp_path: Path) -> None:
    model, x = llsqf_digits
    dep = qdeploy.deploy(model, acc_bits=16)
    path = tmp_path / "model.qdse"
    dep.save(path)
    back = qdeploy.load(path)
    assert back.acc_bits == 16
    assert torch.equal(back(x), dep(x))
    bad = tmp_path / "junk.bin"
    bad.write_bytes(b"\x80\x03junk" * 10)
    with pytest.raises(ValueError, match=r"junk\.bin"):
        qdeploy.load(bad)


def test_bias_is_clamped_to_bias_bits_in_the_deployed_model() -> None:
    """LLSQ Eq. 6 in the stored program: biases of 400 and -400 LSBs become 127 and -128."""
    torch.manual_seed(2)
    lin = QuantLinear.from_float(nn.Linear(12, 4), LLSQWeightQuantizer(4, alpha=0.05),
                                 LLSQActQuantizer(4, alpha=0.1)).eval()
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([2.0, -2.0, 0.3, -0.2]))
    dep = qdeploy.deploy(lin, acc_bits=32, bias_bits=8)
    assert dep.ops[1]["bias"].tolist() == [127, -128, 60, -40]
    x = torch.rand(6, 12) * 1.6
    out = torch.round(dep(x).double() / (0.1 * 0.05)).long()
    xq = lin.input_quantizer.codes(x).long()
    wq = lin.weight_quantizer.codes(lin.weight).long()
    assert torch.equal(out, xq @ wq.T + torch.tensor([127, -128, 60, -40]))


def test_relu_on_the_accumulator_zeroes_negative_sums() -> None:
    """A ReLU straight after a linear layer acts on the integer accumulator: the output is
    relu(q_x q_w^T + q_b) s_acc exactly (no requantization after it clamps for the ReLU)."""
    torch.manual_seed(3)
    lin = QuantLinear.from_float(nn.Linear(12, 4), LLSQWeightQuantizer(4, alpha=0.05),
                                 LLSQActQuantizer(4, alpha=0.1)).eval()
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([-0.4, 0.1, -0.2, 0.0]))  # / s_acc: -80, 20, -40, 0
    dep = qdeploy.deploy(nn.Sequential(lin, nn.ReLU()).eval(), acc_bits=32, bias_bits=16)
    x = torch.rand(16, 12) * 1.6
    out = torch.round(dep(x).double() / (0.1 * 0.05)).long()
    acc = (lin.input_quantizer.codes(x).long() @ lin.weight_quantizer.codes(lin.weight).long().T
           + torch.tensor([-80, 20, -40, 0]))
    assert bool((acc < 0).any())
    assert torch.equal(out, acc.clamp_min(0))


def test_graphs_that_are_not_chains_are_refused(tiny_resnet: nn.Module) -> None:
    q = quant.quantize(tiny_resnet, "llsqf", 4, 4).eval()
    hooks.calibrate(q, torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match="chain"):
        qdeploy.deploy(q)


# ---- Conv1d (1-D CNNs: keyword spotting, ECG, audio) -------------------------------------------
def _chain_1d(pool: nn.Module) -> nn.Module:
    """Conv1d(stride 2)-BN-ReLU-pool, Conv1d(even kernel, padding='same': one more zero
    after)-BN-ReLU, flatten, linear; through llsqf W4A4, calibrated on random signals."""
    torch.manual_seed(5)
    m = nn.Sequential(nn.Conv1d(3, 8, 5, stride=2, padding=2), nn.BatchNorm1d(8), nn.ReLU(), pool,
                      nn.Conv1d(8, 6, 4, padding="same"), nn.BatchNorm1d(6), nn.ReLU(),
                      nn.Flatten(), nn.LazyLinear(4))
    m(torch.randn(2, 3, 24))  # materialise the linear layer
    for bn in (m[1], m[5]):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(-1.5, 1.5)  # some negative folded scales (Eq. 5)
    q = quant.quantize(m.eval(), "llsqf", 4, 4)
    hooks.calibrate(q, torch.randn(32, 3, 24))
    return q.eval()


@pytest.mark.filterwarnings("ignore:Using padding='same'", "ignore:Lazy modules")
@pytest.mark.parametrize("acc_bits", [8, 16, 32])
@pytest.mark.parametrize("pool", [nn.MaxPool1d(2), nn.MaxPool1d(3, 2, 1, dilation=2,
                                                                ceil_mode=True)],
                         ids=["maxpool2", "maxpool3-s2-p1-d2-ceil"])
def test_conv1d_chain_deployed_equals_the_integer_export(pool: nn.Module, acc_bits: int,
                                                         tmp_path: Path) -> None:
    """The deployed program (Tensor.unfold MACs, a 1 x k int32 max pool) against
    to_integer(accumulate="final") (im2col by F.unfold, torch's max_pool1d on float64): equal,
    also where an 8-bit accumulator saturates, and after a save/load round trip."""
    model = _chain_1d(pool)
    x = torch.randn(64, 3, 24)
    dep = qdeploy.deploy(model, acc_bits=acc_bits)
    ref = to_integer(model, acc_bits=acc_bits, accumulate="final")
    out = dep(x)
    assert torch.equal(out, ref(x))
    assert [op["op"] for op in dep.ops if op["op"].startswith(("conv", "max"))] == [
        "conv1d", "maxpool1d", "conv1d"]
    assert all(not dt.is_floating_point for dt in dep.dtypes_seen)
    if acc_bits == 8:
        assert ref.overflow_count > 0
        assert not torch.equal(out, qdeploy.deploy(model, acc_bits=32)(x))
    dep.save(tmp_path / "kws.qdse")
    assert torch.equal(qdeploy.load(tmp_path / "kws.qdse")(x), out)


def test_maxpool2d_dilation_and_ceil_mode_are_deployed() -> None:
    """A max pool's dilation and ceil_mode reach the deployed program (they were dropped)."""
    torch.manual_seed(6)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                      nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), nn.Flatten(),
                      nn.Linear(4 * 4 * 4, 3))
    q = quant.quantize(m.eval(), "llsqf", 4, 4)
    x = torch.rand(16, 1, 9, 9)
    hooks.calibrate(q, x)
    q.eval()
    assert torch.equal(qdeploy.deploy(q)(x), to_integer(q, acc_bits=32, accumulate="final")(x))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_convs_the_program_cannot_hold_are_refused() -> None:
    def seq(conv: nn.Module) -> nn.Module:
        q = quant.quantize(nn.Sequential(conv).eval(), "llsqf", 4, 4)
        hooks.calibrate(q, torch.rand(2, 4, *[8] * (conv.weight.dim() - 2)))
        return q.eval()

    with pytest.raises(ValueError, match=r"conv '0' has groups/dilation"):
        qdeploy.deploy(seq(nn.Conv1d(4, 4, 3, groups=2)))
    with pytest.raises(ValueError, match=r"conv '0' has groups/dilation"):
        qdeploy.deploy(seq(nn.Conv1d(4, 4, 3, dilation=2)))
    with pytest.raises(ValueError, match=r"conv '0' pads \(\(1, 1\), \(1, 2\)\)"):
        qdeploy.deploy(seq(nn.Conv2d(4, 4, (3, 4), padding="same")))
