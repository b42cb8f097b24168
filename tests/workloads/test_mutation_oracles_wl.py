"""Oracles for the mutants of workloads/ops.py, einsum.py and composite.py that the suite let
live (mutation audit of workloads/, session 6). Each test names the wrong variant it kills.

Oracles are independent of the formulas under test: torch's own output shapes and kernels
(``torch.utils.flop_counter``), the same layer written two ways (a module and its functional
call, a matmul and its einsum), ``F.fold`` for col2im, and closed forms worked out here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from wlkit import flop_counter_macs

from workloads import Layer, extract, from_onnx
from workloads.einsum import einsum_gemm, einsum_parts

pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration:UserWarning")


def geometry(la: Layer) -> tuple[object, ...]:
    """What the simulator reads of a layer, without its name."""
    return (la.op, la.n, la.c, la.h, la.w, la.k, la.r, la.s, la.stride, la.padding, la.groups,
            la.ho, la.wo, la.macs, la.weight_elems, la.input_elems, la.output_elems,
            la.meta.get("bias_elems"), la.meta.get("dilation"))


def test_functional_conv_is_the_module_conv() -> None:
    """F.conv2d with positional stride/padding/dilation/groups, and with every default, gives
    the layer its nn.Conv2d twin gives. Kills: a default stride of 2 for an omitted argument;
    groups read from the dilation slot; the kernel read from the weight's (C/g, R) dims."""

    class Modules(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 3),
                               groups=2)
            self.b = nn.Conv2d(6, 5, (2, 3), bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wa = nn.Parameter(torch.zeros(6, 2, 3, 5))
            self.ba = nn.Parameter(torch.zeros(6))
            self.wb = nn.Parameter(torch.zeros(5, 6, 2, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.conv2d(x, self.wa, self.ba, (2, 1), (1, 2), (1, 3), 2)
            return F.conv2d(y, self.wb)

    mods = extract(Modules(), (4, 9, 16), batch=2).compute_layers()
    funcs = extract(Functional(), (4, 9, 16), batch=2).compute_layers()
    assert [geometry(la) for la in funcs] == [geometry(la) for la in mods]
    out = Modules()(torch.zeros(2, 4, 9, 16))
    assert (mods[1].k, mods[1].ho, mods[1].wo) == tuple(out.shape[1:])
    assert (mods[0].stride, mods[1].stride) == ((2, 1), (1, 1))
    assert (mods[0].groups, mods[0].r, mods[0].s) == (2, 3, 5)


@pytest.mark.parametrize("conv", [nn.Conv2d, nn.Conv1d])
def test_same_padding_is_the_padding_torch_applies(conv: type[nn.Module]) -> None:
    """padding='same' with dilation d pads d*(R-1)/2 per side: the layer equals the conv with
    that explicit padding, and (H + 2p - d(R-1) - 1) / stride + 1 gives torch's output size.
    Kills: the dilation dropped from the 'same' padding."""
    shape = (3, 11, 13) if conv is nn.Conv2d else (3, 13)

    def net(padding: object) -> nn.Module:
        return nn.Sequential(conv(3, 4, 3, padding=padding, dilation=3))

    same = extract(net("same"), shape, batch=1).compute_layers()[0]
    explicit = extract(net(3), shape, batch=1).compute_layers()[0]
    assert geometry(same) == geometry(explicit)
    assert same.padding == ((3, 3) if conv is nn.Conv2d else (0, 3))
    width = shape[-1]
    assert same.wo == (width + 2 * same.padding[1] - 3 * (3 - 1) - 1) // 1 + 1 == width
    valid = extract(net("valid"), shape, batch=1).compute_layers()[0]
    assert valid.padding == (0, 0)
    assert valid.wo == net("valid")(torch.zeros(1, *shape)).shape[-1]


def test_linear_and_matmul_gemm_shapes_and_bias() -> None:
    """A linear layer's bias is its K output biases; x @ W with a non-square W is an
    (rows x K) @ (K x N) GEMM (K = x's last dim); x @ v with a vector v has N = 1 and one row
    per output element. MACs are torch's kernel count. Kills: bias_elems on bias-free layers
    only; K read from the second operand; N = out[-1] for a matrix-vector product."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 7)
            self.nobias = nn.Linear(7, 3, bias=False)
            self.w = nn.Parameter(torch.zeros(3, 4))
            self.v = nn.Parameter(torch.zeros(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.nobias(self.fc(x))
            return (y @ self.w).sum(-1) + torch.matmul(y, self.v)

    model = Net()
    wl = extract(model, (5, 3), batch=2)
    fc, nobias = wl["fc"], wl["nobias"]
    assert fc.meta["bias_elems"] == model.fc.bias.numel() == 7
    assert "bias_elems" not in nobias.meta
    mm, mv = [la for la in wl.compute_layers() if la.op == "matmul"]
    assert (mm.gemm_m, mm.gemm_k, mm.gemm_n) == (2 * 5, 3, 4)
    assert (mv.gemm_m, mv.gemm_k, mv.gemm_n) == (2 * 5, 3, 1)
    assert (mm.weight_elems, mv.weight_elems) == (3 * 4, 3)
    # the flop counter has no formula for aten.mv (the x @ v kernel): its 2*5*3 MACs by hand
    assert wl.total_macs == flop_counter_macs(model, torch.zeros(2, 5, 3)) + 2 * 5 * 3
    assert all(la.n == 2 for la in wl.compute_layers())         # Layer.n == Workload.batch


def test_standalone_batch_norm_is_two_vector_ops_per_element() -> None:
    """A BN that cannot be fused (it reads the input and feeds two convs) stays a `bn` node of
    y = a*x + b per element: 2 * numel vector ops. Kills: one op per element."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(x)
            return self.a(y) + self.b(y)

    wl = extract(Net(), (3, 5, 6), batch=2)
    assert wl["bn"].op == "bn"
    assert wl["bn"].vector_ops == 2 * (2 * 3 * 5 * 6)


def test_adaptive_pool_windows_are_torchs() -> None:
    """AdaptiveAvgPool2d(3) windows along a dim of L: [floor(i*L/3), ceil((i+1)*L/3)). For
    L = 5: [0,2) [1,4) [3,5) (sizes 2, 3, 2); for L = 7: [0,3) [2,5) [4,7) (3, 3, 3) - checked
    against torch's output here, then the layer's window reads (sum of sizes per dim, per
    channel) and its largest window. Kills: floor for the window end; the smallest window."""
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    rows, cols = [(0, 2), (1, 4), (3, 5)], [(0, 3), (2, 5), (4, 7)]
    by_hand = torch.tensor([[[x[0, c, r0:r1, c0:c1].mean() for c0, c1 in cols]
                             for r0, r1 in rows] for c in range(2)])
    assert torch.allclose(F.adaptive_avg_pool2d(x, 3)[0], by_hand)
    wl = extract(nn.Sequential(nn.AdaptiveAvgPool2d(3)), (2, 5, 7), batch=4)
    pool = wl["0"]
    assert (pool.r, pool.s) == (3, 3)
    assert pool.vector_ops == 4 * 2 * (2 + 3 + 2) * (3 + 3 + 3)


@pytest.mark.parametrize(("module", "function", "shape"), [
    (nn.MaxPool2d(3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1), (3, 9, 10)),
    (nn.AvgPool2d((2, 3), (1, 2)), lambda x: F.avg_pool2d(x, (2, 3), (1, 2)), (3, 9, 10)),
    (nn.MaxPool1d(3, 2, 1), lambda x: F.max_pool1d(x, 3, 2, 1), (3, 10)),
    (nn.AvgPool1d(2), lambda x: F.avg_pool1d(x, 2), (3, 10)),
])
def test_pool_module_is_its_functional_call(module: nn.Module, function: object,
                                            shape: tuple[int, ...]) -> None:
    """A pooling module and the functional call with the same arguments are the same layer:
    window, stride, padding, window reads = numel(out) * R * S. Kills: a module's stride taken
    as its kernel; a 1-D module's window squared. Found: nn.MaxPool1d/AvgPool1d recorded their
    stride and padding on both axes ((2, 2) for stride 2; F.max_pool1d's layer has (1, 2))."""

    class Fn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return function(x)  # type: ignore[operator]

    mod = next(la for la in extract(nn.Sequential(module), shape, batch=2) if la.op == "pool")
    fn = next(la for la in extract(Fn(), shape, batch=2) if la.op == "pool")
    assert geometry(mod)[1:] == geometry(fn)[1:]
    out = module(torch.zeros(2, *shape))
    assert mod.vector_ops == out.numel() * mod.r * mod.s
    one_d = isinstance(module, nn.MaxPool1d | nn.AvgPool1d)
    k = module.kernel_size
    kernel = tuple(k) if isinstance(k, tuple) else (k, k)
    assert (mod.r, mod.s) == ((1, kernel[-1]) if one_d else kernel)
    if one_d:
        assert (mod.stride[0], mod.padding[0]) == (1, 0)


def test_a_returned_tuple_is_every_element_it_holds() -> None:
    """``return y.chunk(2, 1)`` hands both halves to the output: the output node reads all of
    the conv's output (bytes are conserved). Kills: a tuple's size as its largest element."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self.conv(x).chunk(3, 1)

    wl = extract(Net(), (3, 8, 8), batch=2)
    assert wl["output"].input_elems == wl["conv"].output_elems == 2 * 6 * 6 * 6


def test_memory_op_dims_cover_its_tensors_at_any_rank() -> None:
    """A memory op's (n, c, h, w) and (n, k, ho, wo) multiply to the elements it reads and
    writes, for 5-D tensors too (the middle dims fold into h). Kills: h from one middle dim."""

    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.reshape(x.shape[0], 2, 3, 4, 5)
            return torch.relu(y) * y

    wl = extract(Net(), (120,), batch=2)
    for la in wl:
        if la.op in ("input", "output"):
            continue
        assert la.n * la.k * la.ho * la.wo == la.output_elems == 2 * 120, la.name
        assert la.n * la.c * la.h * la.w * len(wl.predecessors(la.name)) == la.input_elems


def test_transposed_conv_macs_and_col2im_against_torch() -> None:
    """A grouped ConvTranspose2d costs what torch's flop counter counts; its col2im adds are the
    elements of the columns F.fold scatters into the output (checked: fold(columns) is torch's
    conv_transpose2d output); the functional call with positional groups is the same layer.
    Kills: groups dropped from the MACs; col2im adds as output elements; groups read from the
    dilation slot; out_hw as the input's size."""
    c, k, g, r, s = 4, 6, 2, 3, 2
    up = nn.ConvTranspose2d(c, k, (r, s), stride=2, padding=1, groups=g, bias=False)
    x = torch.randn(2, c, 5, 7)
    y = up(x)
    # columns: per group, W_g^T (K/g*R*S x C/g) times the input pixels (C/g x H*W)
    w = up.weight.reshape(g, c // g, k // g * r * s)
    xg = x.reshape(2, g, c // g, 5 * 7)
    cols = torch.einsum("gcj,ngcp->ngjp", w, xg).reshape(2, k * r * s, 5 * 7)
    folded = F.fold(cols, y.shape[-2:], (r, s), stride=2, padding=1)
    assert torch.allclose(folded, y, atol=1e-5)

    class Fn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(up.weight.detach().clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv_transpose2d(x, self.w, None, 2, 1, 0, g)

    la = extract(nn.Sequential(up), (c, 5, 7), batch=2)["0"]
    fn = extract(Fn(), (c, 5, 7), batch=2)["conv_transpose2d"]
    assert la.macs == flop_counter_macs(nn.Sequential(up), x)
    assert la.meta["col2im_adds"] == cols.numel()
    assert la.meta["transposed"]["out_hw"] == list(y.shape[-2:])
    assert geometry(fn)[1:] == geometry(la)[1:]
    assert fn.meta["transposed"] == la.meta["transposed"]


@pytest.mark.parametrize(("equation", "a", "b"), [
    ("...ij,...jk->...ik", (3, 4, 5), (2, 3, 5, 6)),     # the second operand has more batch dims
    ("...ij,...jk->...ik", (2, 3, 4, 5), (3, 5, 6)),     # the first has more
    ("bij,bjk->bik", (1, 4, 5), (3, 5, 6)),              # a size-1 batch dim broadcasts
])
def test_einsum_broadcasting_gives_torchs_output_and_matmuls_gemm(
        equation: str, a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """Ellipsis dims align from the right and size-1 dims broadcast, as in torch: the sizes
    `einsum_parts` assigns the output letters are torch's output shape, and the GEMM is the one
    torch.matmul of the same operands gives (same MACs and K). Kills: ellipsis aligned from the
    left; a letter's size taken from the last operand instead of the broadcast one."""
    ins, out = einsum_parts(equation, [a, b])
    size: dict[str, int] = {}
    for sub, shape in zip(ins, (a, b), strict=True):
        for letter, d in zip(sub, shape, strict=True):
            size[letter] = max(size.get(letter, 1), d)
    result = torch.einsum(equation, torch.zeros(a), torch.zeros(b))
    assert tuple(size[letter] for letter in out) == tuple(result.shape)

    class Ein(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(b))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum(equation, x, self.w)

    class Mat(Ein):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.w

    ein = extract(Ein(), a[1:], batch=a[0]).compute_layers()[0]
    mat = extract(Mat(), a[1:], batch=a[0]).compute_layers()[0]
    assert ein.macs == mat.macs == result.numel() * a[-1]
    assert ein.gemm_k == mat.gemm_k == a[-1]
    assert ein.output_elems == result.numel()


def test_einsum_sums_out_a_letter_only_one_operand_has_before_the_gemm() -> None:
    """'ij,kl->ik' sums j out of the first operand and l out of the second (vector ops, their
    elements), then multiplies (K = 1); 'ij,jk->ik' sums nothing first. Kills: every
    contracted letter counted as a pre-sum."""
    assert einsum_gemm("ij,kl->ik", [(4, 5), (6, 7)]) == (1, 6, 4 * 5 + 6 * 7)
    assert einsum_gemm("ij,jk->ik", [(4, 5), (5, 6)]) == (5, 6, 0)
    assert einsum_gemm("bij,bjk->bik", [(2, 4, 5), (2, 5, 6)]) == (5, 6, 0)


# -- onnx_import.py ---------------------------------------------------------------------------
def _node(op_type: str, inputs: list[str], **attrs: object) -> object:
    """An ONNX node writing ``y`` (onnx, an optional extra, is imported as a test runs)."""
    pytest.importorskip("onnx", reason="optional extra qdse[onnx] (the onnx package) missing")
    from onnx import helper

    return helper.make_node(op_type, inputs, ["y"], **attrs)


def _onnx_model(nodes: list[object], inputs: dict[str, list[int]],
                inits: dict[str, object] | None = None) -> object:
    """A one-graph ONNX model (opset 17) of ``nodes`` with float inputs of fixed shapes."""
    from onnx import TensorProto, helper, numpy_helper

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()]
    out = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)  # type: ignore[attr-defined]
    weights = [numpy_helper.from_array(np.asarray(v, np.float32), k)
               for k, v in (inits or {}).items()]
    graph = helper.make_graph(nodes, "g", ins, [out], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_pool_and_1d_conv_attributes_are_onnxs() -> None:
    """ONNX pools without a ``strides`` attribute slide by 1 (the operator's default; ONNX's
    shape inference agrees: 5x6 -> 4x4 for a 2x3 window), and a 1-D Conv's stride is on W.
    Found: a pool without strides recorded its kernel as the stride. Kills: the 1-D stride on
    H."""
    pool = _onnx_model([_node("MaxPool", ["x"], kernel_shape=[2, 3],
                                         name="pool")], {"x": [1, 2, 5, 6]})
    la = from_onnx(pool)["pool"]
    assert (la.r, la.s, la.stride, la.ho, la.wo) == (2, 3, (1, 1), 4, 4)
    conv = _onnx_model([_node("Conv", ["x", "w"], strides=[2], pads=[1, 1],
                                         name="conv")], {"x": [2, 3, 9]},
                       {"w": np.zeros((4, 3, 3))})
    onnx_conv = from_onnx(conv)["conv"]
    torch_conv = extract(nn.Sequential(nn.Conv1d(3, 4, 3, stride=2, padding=1, bias=False)),
                         (3, 9), batch=2)["0"]
    assert geometry(onnx_conv)[1:] == geometry(torch_conv)[1:]
    assert onnx_conv.stride == (1, 2)


def test_onnx_gemm_of_two_activations_with_trans_a() -> None:
    """Gemm(A, B, transA=1) of two activations A (4 x 3), B (4 x 5) is A^T B: K = 4 (A's rows),
    3 x 5 outputs, 60 MACs (numpy's matmul of the same operands contracts 4). Kills: K as A's
    last dim whatever transA."""
    model = _onnx_model([_node("Gemm", ["a", "b"], transA=1, name="gemm")],
                        {"a": [4, 3], "b": [4, 5]})
    la = from_onnx(model)["gemm"]
    product = np.zeros((4, 3)).T @ np.zeros((4, 5))
    assert (la.op, la.gemm_k, la.gemm_n, la.output_elems) == ("matmul", 4, 5, product.size)
    assert la.macs == product.size * 4


def test_onnx_pool_pads_and_lstm_layout() -> None:
    """ONNX pads are [H_begin, W_begin, H_end, W_end]: pads [1, 0, 1, 0] is torch's padding
    (1, 0), the layer torch's MaxPool2d gives. An LSTM with layout=1 reads X as (batch, seq,
    input): 5 steps of 2 sequences. Kills: the W padding read from H_end; layout ignored."""
    pool = _onnx_model([_node("MaxPool", ["x"], kernel_shape=[2, 3],
                                         strides=[1, 2], pads=[1, 0, 1, 0], name="pool")],
                       {"x": [2, 3, 6, 9]})
    ref = extract(nn.Sequential(nn.MaxPool2d((2, 3), (1, 2), (1, 0))), (3, 6, 9), batch=2)["0"]
    assert geometry(from_onnx(pool)["pool"])[1:] == geometry(ref)[1:]
    hidden = 3
    lstm = _onnx_model([_node("LSTM", ["x", "w", "r"], hidden_size=hidden,
                                         layout=1, name="lstm")], {"x": [2, 5, 4]},
                       {"w": np.zeros((1, 4 * hidden, 4)), "r": np.zeros((1, 4 * hidden, hidden))})
    wl = from_onnx(lstm)
    assert wl["lstm.l0.hh"].meta["steps"] == 5
    assert wl.total_macs == 2 * 5 * (4 + hidden) * 4 * hidden


def test_onnx_auto_pad_is_the_padding_it_implies() -> None:
    """Conv(auto_pad=SAME_UPPER, stride 2, 3x3) on 7x7 pads (4-1)*2 + 3 - 7 = 2 rows, one per
    side: the layer torch's Conv2d(padding=1, stride=2) gives (same 4x4 output). Found: the
    layer recorded padding (0, 0) (only the ``pads`` attribute was read)."""
    conv = _onnx_model([_node("Conv", ["x", "w"], auto_pad="SAME_UPPER",
                                         strides=[2, 2], name="conv")], {"x": [1, 2, 7, 7]},
                       {"w": np.zeros((4, 2, 3, 3))})
    ref = extract(nn.Sequential(nn.Conv2d(2, 4, 3, 2, 1, bias=False)), (2, 7, 7), batch=1)["0"]
    assert geometry(from_onnx(conv)["conv"])[1:] == geometry(ref)[1:]
    assert ref.padding == (1, 1)


def test_onnx_biases_and_1d_transposed_conv_are_torchs() -> None:
    """ConvTranspose's bias B has one value per output channel (K), Gemm's C one per output
    column, an LSTM without B has no bias: the records torch's modules give. A 1-D
    ConvTranspose's stride is on W, as torch's ConvTranspose1d layer has it. Kills: the
    transposed bias as the GEMM's K*R*S columns; Gemm's C ignored; an LSTM bias assumed; the
    1-D transposed geometry on H."""
    up = _onnx_model([_node("ConvTranspose", ["x", "w", "b"], strides=[2],
                                       name="up")], {"x": [2, 3, 6]},
                     {"w": np.zeros((3, 5, 4)), "b": np.zeros(5)})
    torch_up = extract(nn.Sequential(nn.ConvTranspose1d(3, 5, 4, stride=2)), (3, 6), batch=2)
    la, ref = from_onnx(up)["up"], torch_up["0"]
    assert la.meta["bias_elems"] == ref.meta["bias_elems"] == 5
    assert la.meta["transposed"] == ref.meta["transposed"]
    assert la.meta["transposed"]["stride"] == [1, 2]
    gemm = _onnx_model([_node("Gemm", ["x", "w", "c"], transB=1, name="fc")],
                       {"x": [2, 6]}, {"w": np.zeros((4, 6)), "c": np.zeros(4)})
    assert from_onnx(gemm)["fc"].meta["bias_elems"] == nn.Linear(6, 4).bias.numel()
    lstm = _onnx_model([_node("LSTM", ["x", "w", "r"], hidden_size=3,
                                         name="lstm")], {"x": [5, 2, 4]},
                       {"w": np.zeros((1, 12, 4)), "r": np.zeros((1, 12, 3))})
    assert all("bias_elems" not in la.meta for la in from_onnx(lstm).compute_layers())


def test_onnx_qcdq_bits_follow_onnxs_integer_types() -> None:
    """QuantizeLinear without a zero point writes uint8 (the operator's default; ONNX's type
    inference says so), so the conv reading it multiplies 8-bit inputs; a weight stored as an
    int8 initializer and dequantized has 8-bit weights. Kills: another default width; the
    initializer's type ignored."""
    onnx = pytest.importorskip("onnx", reason="optional extra qdse[onnx] missing")
    from onnx import TensorProto, helper, numpy_helper

    model = _onnx_model([
        helper.make_node("QuantizeLinear", ["x", "s"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["wq", "s"], ["w"], name="dqw"),
        _node("Conv", ["xd", "w"], name="conv")], {"x": [1, 2, 5, 5]},
        {"s": np.float32(0.1)})
    model.graph.initializer.append(  # type: ignore[attr-defined]
        numpy_helper.from_array(np.zeros((3, 2, 1, 1), np.int8), "wq"))
    inferred = onnx.shape_inference.infer_shapes(model)
    xq = next(v for v in inferred.graph.value_info if v.name == "xq")
    assert xq.type.tensor_type.elem_type == TensorProto.UINT8
    conv = from_onnx(model)["conv"]
    assert (conv.a_bits, conv.w_bits) == (8, 8)


# -- brevitas.py ------------------------------------------------------------------------------
def test_brevitas_proxies_bits_rounded_up_and_fallbacks() -> None:
    """Bits from Brevitas quantizer proxies (modules of the ``brevitas`` package, faked here):
    a learned width of 2.3 needs 3 bits to store (rounded up), 4.0000001 is 4 (float noise);
    an activation whose act_quant is off is quantized by its output_quant; a layer's
    output_quant sets its output_bits. Kills: widths truncated; the output_quant fallback
    dropped; a layer's output quantizer ignored."""
    from types import SimpleNamespace

    from workloads import brevitas

    def proxy(width: float | None) -> object:
        return SimpleNamespace(is_quant_enabled=width is not None,
                               bit_width=lambda: torch.tensor(width or 0.0))

    base = type("QuantNonLinearActLayer", (nn.Module,), {"__module__": "brevitas.nn.fake"})
    act = type("QuantReLU", (base,), {"__module__": "brevitas.nn.fake"})
    layer = type("QuantLinear", (nn.Linear,), {"__module__": "brevitas.nn.fake"})
    for width, bits in ((2.3, 3), (4.0000001, 4), (5.0, 5)):
        a = act()
        a.act_quant = proxy(width)
        assert brevitas.knows(a)
        assert brevitas.bits(a)["act_bits"] == bits
    a = act()
    a.act_quant, a.output_quant = proxy(None), proxy(6)
    assert brevitas.bits(a)["act_bits"] == 6
    fc = layer(4, 3)
    fc.weight_quant, fc.input_quant, fc.output_quant = proxy(4), proxy(None), proxy(8)
    assert brevitas.bits(fc) == {"weight_bits": 4, "act_bits": None, "output_bits": 8}


# -- scalesim_io.py ---------------------------------------------------------------------------
def test_a_scalesim_name_marks_depthwise_only_on_depthwise_layers(tmp_path: Path) -> None:
    """SCALE-Sim reads any layer whose name contains 'DP' as depthwise: a dense conv named
    'DPconv' must be written so it reads back dense, with its MACs (conservation through the
    round trip). Kills: names written as they are."""
    from workloads import Workload
    from workloads.scalesim_io import from_scalesim

    dense = Layer(name="DPconv", op="conv", c=4, h=6, w=6, k=8, r=3, s=3, ho=4, wo=4,
                  macs=4 * 4 * 8 * 4 * 9)
    path = tmp_path / "topo.csv"
    Workload.from_layers([dense]).to_scalesim(path)
    (back,) = from_scalesim(path).compute_layers()
    assert (back.groups, back.macs, back.k) == (1, dense.macs, 8)
