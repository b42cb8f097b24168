"""Oracles for the mutants of workloads/composite.py, lower.py, graph.py and trace.py that the
suite let live (mutation audit of workloads/, session 6). Each test names the wrong variant it
kills.

Oracles: ``torch.utils.flop_counter`` (the kernels torch runs), the modules' own parameter
counts and output shapes, the equations of the cells in torch's documentation, and conservation
laws of the graph (bytes along edges, elements through memory ops).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from wlkit import FakeQuantAct, FakeQuantConv2d, FakeQuantLinear, flop_counter_macs

from workloads import extract
from workloads.composite import Recurrent, recurrent_ops
from workloads.graph import bytes_for

pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration:UserWarning")


def test_cross_attention_of_other_lengths_and_widths() -> None:
    """Queries of L = 7 tokens attend to S = 4 memory tokens whose keys and values have their
    own widths (kdim 6, vdim 5), plus add_zero_attn's extra key: MACs are torch's kernels and
    the closed forms of Vaswani et al. Sec. 3.2.2 with S + 1 keys; the context reads the value
    projection. Kills: k/v projections of L rows; add_zero_attn's key dropped; v_proj drawn
    into the scores."""
    n, length, mem, e, h, d = 2, 7, 4, 8, 2, 4

    class Cross(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = nn.Linear(8, 6)
            self.v = nn.Linear(8, 5)
            self.attn = nn.MultiheadAttention(e, h, kdim=6, vdim=5, add_zero_attn=True,
                                              batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x[:, :mem]
            return self.attn(x, self.k(m), self.v(m))[0]

    model = Cross()
    wl = extract(model, (length, e), batch=n)
    assert wl.total_macs == flop_counter_macs(model, torch.zeros(n, length, e))
    assert wl["attn.k_proj"].macs == n * mem * 6 * e
    assert wl["attn.v_proj"].macs == n * mem * 5 * e
    assert wl["attn.scores"].macs == wl["attn.context"].macs == n * h * length * (mem + 1) * d
    assert wl.predecessors("attn.context") == ["attn.scores", "attn.v_proj"]
    assert wl.predecessors("attn.scores") == ["attn.k_proj", "attn.q_proj"]


def test_sdpa_value_width_sets_the_context_gemm() -> None:
    """F.scaled_dot_product_attention with values wider than queries (Ev = 5, E = 4): the
    context is (L x S) @ (S x Ev). Kills: Ev read from the keys."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Linear(4, 4)
            self.v = nn.Linear(4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.q(x).unsqueeze(1)
            return F.scaled_dot_product_attention(q, q, self.v(x).unsqueeze(1))

    model = Net()
    wl = extract(model, (6, 4), batch=2)
    ctx = next(la for la in wl.compute_layers() if la.name.endswith(".context"))
    assert (ctx.gemm_k, ctx.gemm_n, ctx.output_elems) == (6, 5, 2 * 6 * 5)
    with sdpa_kernel(SDPBackend.MATH):
        assert wl.total_macs == flop_counter_macs(model, torch.zeros(2, 6, 4))


def test_lstm_projection_weights_are_the_modules() -> None:
    """An LSTM with proj_size holds W_hr (P x H) per layer and direction: the layer's weights
    are the module's weight parameters exactly. Kills: the projection's weights as H x H."""
    model = nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4)
    wl = extract(nn.Sequential(model), (5, 8), batch=3)
    assert sum(la.weight_elems for la in wl.compute_layers()) == sum(
        p.numel() for k, p in model.named_parameters() if "weight" in k)


@pytest.mark.parametrize(("cell", "gates", "state_ops"), [(nn.LSTMCell, 4, 5), (nn.GRUCell, 3, 4)])
def test_unbatched_cell_step_and_its_vector_ops(cell: type[nn.Module], gates: int,
                                                state_ops: int) -> None:
    """A cell stepped on an unbatched (input_size,) vector is one row: ih = in x G*H and hh =
    H x G*H MACs (torch's kernels). Its vector ops, from the cell equations in torch's docs, per
    row: every gate unit adds its ih and hh pre-activations and applies its non-linearity (2 *
    G*H), then the state update: LSTM c' = f*c + i*g (3), h' = o*tanh(c') (2); GRU n's r*(hh_n)
    (1), h' = (1-z)*n + z*h (3). Kills: (1, in) read as (in, 1); LSTM's update as 4 ops; one op
    per gate unit. (The cell is fused into hh, so these vector ops stay in the Op record.)"""
    hidden = 7

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = cell(5, hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.cell(x[0])
            return out[0] if isinstance(out, tuple) else out

    model = Net()
    wl = extract(model, (5,), batch=1)
    assert wl.total_macs == flop_counter_macs(model, torch.zeros(1, 5)) == \
        5 * gates * hidden + hidden * gates * hidden
    (ih,) = [la for la in wl.compute_layers() if la.name.endswith(".ih")]
    assert (ih.gemm_m, ih.gemm_k, ih.gemm_n) == (1, 5, gates * hidden)
    assert wl["cell.l0.hh"].meta["fused"] == ["cell.l0.cell"]   # its epilogue: no own cost
    kind = {4: "LSTM", 3: "GRU"}[gates]
    ex = recurrent_ops("r", Recurrent(cell=kind, hidden=hidden), 2, 3, 5, 2, None, [])
    (cell_op,) = [op for op in ex.ops if op.name == "r.l0.cell"]
    assert cell_op.vector_ops == 2 * 3 * (2 * gates * hidden + state_ops * hidden)


@pytest.mark.parametrize("batch_first", [True, False])
def test_steps_on_the_batch_axis_only_for_a_time_major_input(batch_first: bool) -> None:
    """extract's batch is the input's first axis: time for a (L, N, F) input (the hh GEMM's
    rows then count steps: meta["steps_axis"] = "n"), sequences for batch_first. With the batch
    equal to the step count the two must still be told apart. Kills: steps_axis set whenever
    n == steps."""
    model = nn.LSTM(4, 6, batch_first=batch_first)
    wl = extract(nn.Sequential(model), (5, 4), batch=5)    # 5 sequences of 5, or 5 steps of 5
    hh = wl["0.l0.hh"]
    assert hh.meta["steps"] == 5
    assert ("steps_axis" in hh.meta) is (not batch_first)


# -- lower.py: bits --------------------------------------------------------------------------
class TwoQuantizers(nn.Module):
    """conv -> two quantizers (bits a, b; a=None: no quantizer) -> one matmul of both."""

    def __init__(self, a: int | None, b: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.qa = FakeQuantAct(a) if a else nn.Identity()
        self.qb = FakeQuantAct(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.qa(y) @ self.qb(y).transpose(-1, -2)


@pytest.mark.parametrize(("a", "b", "want"), [(4, 8, 8), (8, 4, 8), (None, 4, 16)])
def test_a_matmul_reads_each_input_at_its_own_quantizers_bits(a: int | None, b: int,
                                                              want: int) -> None:
    """Found: of two quantizers fused into one matmul as prologues, the first fused set its
    a_bits (4 or 8 by the order of the graph, not the values: the 8-bit input was read at 4
    bits), and a matmul reading one input raw and one through a 4-bit quantizer was costed at 4
    bits, its raw input stored at 4 bits. The wider input sets the multipliers; a raw one keeps
    16 bits, and the conv's output is stored at what its readers need."""
    wl = extract(TwoQuantizers(a, b), (3, 5, 5))
    mm = wl["matmul"]
    assert mm.a_bits == want
    assert wl["conv"].o_bits == want


def test_the_last_of_chained_quantizers_sets_the_bits_read() -> None:
    """input -> QAct(8) -> QAct(4) -> conv: the conv reads 4-bit values, and the input it
    quantizes as it reads is stored at 4 bits. Found: the first quantizer's 8 bits were used
    (the prologue took the node's own quantizer before the one fused after it)."""

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q8, self.q4, self.conv = FakeQuantAct(8), FakeQuantAct(4), nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.q4(self.q8(x)))

    wl = extract(Chain(), (3, 8, 8))
    assert wl["conv"].meta["prologue"] == ["q8", "q4"]
    assert (wl["conv"].a_bits, wl["input"].o_bits) == (4, 4)


def test_one_raw_input_keeps_a_two_input_op_at_full_precision() -> None:
    """A matmul of a 4-bit quantized tensor and a raw one multiplies 16-bit values. Kills: a
    compute op's bits from ANY quantized input."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.q = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), FakeQuantAct(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.q(self.a(x)) @ self.b(x).transpose(-1, -2)

    wl = extract(Net(), (3, 5, 5))
    assert wl["a"].o_bits == 4
    assert (wl["matmul"].a_bits, wl["b"].o_bits) == (16, 16)


def test_an_affine_reader_needs_its_input_unquantized() -> None:
    """A BN (affine, not monotone) applied to a tensor before a 4-bit conv reads it: the tensor
    is stored raw (16 bits), since quantizing before the affine map is not what the model
    computes; likewise a ReLU carrying a fused BN. Without the BN the 4-bit reader needs 4
    bits. Kills: the reader's a_bits whatever its prologue; a BN-carrying act as monotone."""

    class Pre(nn.Module):
        def __init__(self, bn: bool) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3) if bn else nn.Identity()
            self.conv = FakeQuantConv2d(3, 4, 3, weight_bits=4, act_bits=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.bn(x))

    assert extract(Pre(bn=True), (3, 6, 6))["input"].o_bits == 16
    assert extract(Pre(bn=False), (3, 6, 6))["input"].o_bits == 4

    class ActBn(nn.Module):
        """conv -> (ReLU -> BN) -> two 4-bit convs, and conv -> a third 4-bit conv."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.relu, self.bn = nn.ReLU(), nn.BatchNorm2d(4)
            self.b, self.c, self.d = (FakeQuantConv2d(4, 4, 1, weight_bits=4, act_bits=4)
                                      for _ in range(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            z = self.bn(self.relu(y))
            return self.b(z) + self.c(z) + self.d(y)

    wl = extract(ActBn(), (3, 5, 5))
    assert wl["relu"].meta["fused"] == ["bn"]
    assert wl["conv"].o_bits == 16


def test_concat_of_quantized_tensors_keeps_the_widest_grid() -> None:
    """cat(4-bit, 8-bit) holds 8-bit values: the conv reading it multiplies 8-bit inputs.
    Kills: the narrowest input's bits."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)
            self.q4, self.q8 = FakeQuantAct(4), FakeQuantAct(8)
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(torch.cat([self.q4(self.a(x)), self.q8(self.b(x))], 1))

    wl = extract(Net(), (3, 5, 5))
    assert (wl["cat"].o_bits, wl["conv"].a_bits) == (8, 8)


def test_the_network_result_is_stored_at_the_wider_operand() -> None:
    """The last layer's output (the network result, no reader to requantize it) is stored at
    max(w_bits, a_bits) = 8 for 8-bit weights and 4-bit inputs. Kills: its a_bits alone."""
    model = nn.Sequential(FakeQuantLinear(6, 3, weight_bits=8, act_bits=4))
    wl = extract(model, (6,), batch=2)
    assert wl["0"].o_bits == 8
    assert wl.graph.edges["0", "output"]["bytes"] == bytes_for(2 * 3, 8)
