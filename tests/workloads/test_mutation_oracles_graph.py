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


# -- lower.py: roles, records, edges ----------------------------------------------------------
def test_two_single_conv_branches_have_no_shortcut() -> None:
    """y = a(x) + b(x): neither branch is the shorter, so neither conv is a projection
    shortcut; with a two-conv main branch the single conv is. Kills: the shortcut picked
    without the other branch being longer."""

    class Net(nn.Module):
        def __init__(self, deep: bool) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)) if deep else \
                nn.Conv2d(3, 4, 1)
            self.stem, self.b, self.head = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 4, 1), \
                nn.Conv2d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            return self.head(self.a(x) + self.b(x))

    roles = {la.name: la.role for la in extract(Net(deep=False), (3, 4, 4)).compute_layers()}
    assert "shortcut" not in roles.values()
    assert extract(Net(deep=True), (3, 4, 4))["b"].role == "shortcut"


def test_a_gemm_layer_reads_the_operand_it_multiplies() -> None:
    """input_elems of conv/linear is the activation operand of its GEMM: for an LSTM's hh, the
    N*T*H hidden states (not the ih gate pre-activations its graph edge carries: 4x more).
    Kills: input_elems of a compute layer summed over its in-edges."""
    wl = extract(nn.Sequential(nn.LSTM(4, 6, batch_first=True)), (5, 4), batch=3)
    assert wl["0.l0.hh"].input_elems == 3 * 5 * 6
    assert wl["0.l0.ih"].input_elems == 3 * 5 * 4


@pytest.mark.parametrize("order", ["slice_first", "whole_first"])
def test_two_views_of_one_tensor_carry_the_whole_tensor(order: str) -> None:
    """An op reading a slice and a reshape of one tensor reads the whole tensor: the single
    edge carries all of it, whichever view comes first. Kills: the first view's shape kept."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            part, whole = y[:, :1], y.reshape(y.shape)
            return part * whole if order == "slice_first" else whole * part

    wl = extract(Net(), (3, 5, 5), batch=2)
    assert wl.graph.edges["conv", "mul"]["shape"] == (2, 4, 5, 5)
    assert wl["mul"].input_elems == 2 * 4 * 5 * 5


# -- graph.py -------------------------------------------------------------------------------
def test_sub_byte_tensors_round_up_to_whole_bytes() -> None:
    """3 values of 4 bits take 12 bits: 2 bytes (1 byte would hold 2 of them); 5 of 3 bits
    take 15 bits: 2 bytes. Kills: bytes rounded down."""
    assert (bytes_for(3, 4), bytes_for(5, 3), bytes_for(8, 1), bytes_for(1, 1)) == (2, 2, 1, 1)
    wl = extract(nn.Sequential(nn.Linear(4, 3)), (4,), batch=1, overrides={"0": 4})
    la = wl["0"]
    assert (la.weight_bytes, la.input_bytes) == (6, 2)            # 12 and 4 nibbles


@pytest.mark.parametrize(("pool", "found"), [(nn.MaxPool2d(2), ["q4"]), (nn.AvgPool2d(2), [])])
def test_input_modules_pass_max_pool_not_average_pool(pool: nn.Module, found: list[str]) -> None:
    """A quantizer before a max-pool still sets the values the next conv reads; an average
    pool makes new values. Kills: input_modules walking through every pool."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.q4, self.pool, self.b = nn.Conv2d(3, 4, 1), FakeQuantAct(4), pool, \
                nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.pool(self.q4(self.a(x))))

    wl = extract(Net(), (3, 6, 6))
    assert wl.input_modules("b") == found


def test_activation_bytes_are_the_outputs_of_real_ops() -> None:
    """The activation footprint sums the tensors ops write, not the network input (which no
    op writes). Kills: the input pseudo-node counted."""
    wl = extract(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8), batch=2)
    assert wl.activation_bytes == wl["0"].output_bytes == bytes_for(2 * 4 * 6 * 6, 16)


# -- trace.py: shapes on the meta device ------------------------------------------------------
def test_meta_shapes_are_torchs_for_broadcasts_and_open_adaptive_sizes() -> None:
    """Shape propagation skips real kernels for elementwise ops and adaptive pools; its shapes
    must be torch's: (N, 1, W) + (N, C, 1) broadcasts to (N, C, W), and AdaptiveAvgPool2d
    ((None, 2)) keeps H. Kills: the first operand's shape for a broadcast; H and W swapped."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d((None, 2))
            self.row, self.col = nn.Conv1d(3, 1, 1), nn.Conv1d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.pool(x).flatten(2)                      # (N, 3, 5 * 2)
            return self.row(y) + self.col(y).mean(-1, keepdim=True)

    model = Net()
    out = model(torch.zeros(2, 3, 5, 7))
    wl = extract(model, (3, 5, 7), batch=2)
    assert (wl["pool"].ho, wl["pool"].wo) == (5, 2)
    assert wl.graph.edges["add", "output"]["shape"] == tuple(out.shape) == (2, 4, 10)


# -- transformer.py: the reference path -----------------------------------------------------
@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_reference_path_runs_the_modules_torch_runs(norm_first: bool) -> None:
    """The traced reference path of nn.TransformerEncoder calls the norms and feed-forward
    layers torch's own forward calls (forward hooks on an eager pass in train mode, where torch
    takes its reference path too; dropout 0): every LayerNorm (norm1, norm2 per layer and the
    encoder's final norm) is a `norm` op of the workload, with torch's MACs. Kills: the final
    norm dropped; a pre-norm layer's attention reading x instead of norm1(x)."""
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                       norm_first=norm_first, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=False)
    called: set[str] = set()
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda m, i, o: called.add(names[m]))
             for m in model.modules() if isinstance(m, nn.LayerNorm | nn.Linear)]
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):      # attention's unfused GEMMs: visible to the counter
        macs = flop_counter_macs(model, torch.zeros(2, 5, 8))
    for h in hooks:
        h.remove()
    wl = extract(model, (5, 8), batch=2)
    assert {la.module for la in wl if la.op == "norm"} == {n for n in called if "norm" in n}
    assert {n for n in called if "linear" in n} <= {la.module for la in wl if la.op == "linear"}
    assert wl.total_macs == macs
    first_attn = wl["layers.0.self_attn.q_proj"]
    assert wl.predecessors(first_attn.name) == (["layers.0.norm1"] if norm_first else ["input"])
