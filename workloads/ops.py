"""Op vocabulary of the lowering: which fx nodes are which ops, and what each one costs.

`classify` maps an fx node (module call, function, method) to an op kind; `cost` fills an `Op`
record's dimensions, MACs, weights and vector ops from the module / call arguments and the shapes
recorded by `workloads.trace.propagate_shapes`. MAC formulas (checked against forward hooks):
conv ``N*K*Ho*Wo*(C/groups)*R*S``, linear ``rows*C*K``, matmul ``numel(out)*K``.
"""

from __future__ import annotations

import logging
import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from workloads.einsum import einsum_gemm, einsum_kind
from workloads.protocol import is_quantized, is_quantized_activation, op_kind
from workloads.trace import ExtractError

__all__ = ["COMPOSITE_MOD", "FUSIBLE", "MODELLED_FUNCTIONS", "MODELLED_MODULES", "Op", "Shape",
           "classify", "cost", "nchw", "numel", "pair", "target_name", "tensor_shape",
           "transposed_conv"]

log = logging.getLogger(__name__)

Shape = tuple[int, ...]

# -- op tables ----------------------------------------------------------------------------------
_ADD_F = {operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub}
_MUL_F = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div}
_ADD_M = {"add", "add_", "sub", "sub_"}
_MUL_M = {"mul", "mul_", "div", "div_"}
_CAT_F = {torch.cat, torch.concat, torch.concatenate, torch.stack}
_MATMUL_F = {torch.matmul, operator.matmul, torch.bmm, torch.mm}
_MATMUL_M = {"matmul", "bmm", "mm"}
_VIEW_F = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.transpose,
           torch.permute, torch.chunk, torch.split, torch.unbind, torch.narrow, operator.getitem,
           F.dropout, torch.t, torch.movedim, torch.clone, getattr, torch.real, torch.imag}
_VIEW_M = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose",
           "contiguous", "chunk", "split", "unbind", "narrow", "expand", "expand_as", "view_as",
           "reshape_as", "t", "clone", "detach", "float", "to", "type_as", "real", "imag",
           # dtype casts: the same values in another number format, no arithmetic
           "long", "int", "short", "half", "double", "bfloat16", "bool", "byte", "type"}
_VIEW_MOD = (nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
_ACT_F = {F.relu, F.relu6, torch.relu, F.hardtanh, F.sigmoid, torch.sigmoid, torch.tanh, F.tanh,
          F.gelu, F.silu, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu, torch.clamp,
          F.softmax, torch.softmax, F.log_softmax, torch.exp, torch.abs, torch.neg,
          F.softplus, F.mish, F.selu, F.celu, F.logsigmoid, F.softsign, torch.where,
          torch.maximum, torch.minimum, torch.pow, operator.pow, operator.neg, torch.sqrt,
          torch.rsqrt, torch.log, torch.sin, torch.cos, torch.erf, torch.sign, torch.round,
          torch.floor, torch.ceil, torch.masked_fill, torch.clamp_min, torch.clamp_max}
_ACT_M = {"relu", "relu_", "sigmoid", "tanh", "clamp", "clamp_", "softmax", "log_softmax",
          "exp", "abs", "neg", "sigmoid_", "tanh_", "masked_fill", "masked_fill_", "pow", "sqrt",
          "rsqrt", "log", "clamp_min", "clamp_max", "round", "sign", "floor", "ceil"}
_ACT_MOD = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Hardswish,
            nn.Hardsigmoid, nn.ELU, nn.Softmax, nn.LogSoftmax, nn.Hardtanh, nn.PReLU,
            nn.Softplus, nn.Mish, nn.SELU, nn.CELU, nn.LogSigmoid, nn.Softsign, nn.Softmin,
            nn.Tanhshrink, nn.Threshold, nn.Hardshrink, nn.Softshrink)
# tensors made from nothing or from a shape (zeros, arange, ...): constants, no arithmetic
_SOURCE_F = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.zeros_like,
             torch.ones_like, torch.full_like, torch.empty_like}
_SOURCE_M = {"new_zeros", "new_ones", "new_full", "new_empty", "zero_", "fill_"}
# GEMM-based modules (and F.scaled_dot_product_attention) lowered to several ops by
# `workloads.composite`
COMPOSITE_MOD = (nn.MultiheadAttention, nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell,
                 nn.RNNCell)
_BN_MOD = (nn.BatchNorm1d, nn.BatchNorm2d)
_NORM_MOD = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.RMSNorm,
             nn.LocalResponseNorm)
_NORM_F = {F.layer_norm, F.group_norm, F.instance_norm, F.rms_norm, F.normalize,
           F.local_response_norm}
_POOL_MOD = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
             nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_POOL_F = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
           F.max_pool1d, F.avg_pool1d, F.adaptive_avg_pool1d}
_POOL_1D_F = {F.max_pool1d, F.avg_pool1d}
_REDUCE_F = {torch.mean, torch.sum, torch.amax, torch.amin, torch.argmax, torch.argmin}
_REDUCE_M = {"mean", "sum", "amax", "amin", "argmax", "argmin"}
# data movement that changes the element count (upsampling, padding, pixel shuffle): "resize"
# (an embedding lookup is a gather of table rows: no MACs; a bag also sums/averages/maxes the
# rows of each bag on the vector unit)
_LOOKUP_MOD = (nn.Embedding, nn.EmbeddingBag)
_LOOKUP_F = {F.embedding, F.embedding_bag}
_RESIZE_MOD = (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.PixelShuffle,
               nn.PixelUnshuffle, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d,
               nn.ReplicationPad2d, *_LOOKUP_MOD)
_RESIZE_F = {F.interpolate, F.pad, F.pixel_shuffle, F.pixel_unshuffle, torch.roll, torch.flip,
             torch.tile, torch.gather, torch.index_select, torch.repeat_interleave, *_LOOKUP_F}
_RESIZE_M = {"repeat", "roll", "flip", "tile", "gather", "index_select", "repeat_interleave"}
_CONV_T_F = {F.conv_transpose1d, F.conv_transpose2d}
FUSIBLE = {"act", "bn"}
MODELLED_MODULES = ("Conv1d/Conv2d and Linear (and subclasses), ConvTranspose1d/2d, "
                    "MultiheadAttention, LSTM, GRU, RNN and their cells, BatchNorm1d/2d, "
                    "LayerNorm/GroupNorm/InstanceNorm1d/2d/RMSNorm, pooling, activations, "
                    "upsampling/padding, Embedding, EmbeddingBag, views")
"""What `classify` lowers, for error messages."""
MODELLED_FUNCTIONS = ("F.conv1d/conv2d/conv_transpose1d/2d, F.linear, matmul/@/bmm/mm, einsum of "
                      "one or two operands, F.scaled_dot_product_attention, pooling and "
                      "mean/sum/amax/argmax reductions, elementwise arithmetic and activations, "
                      "functional norms, cat/stack, interpolate/pad/gather/repeat, views and "
                      "dtype casts")
"""The functions and tensor methods `classify` lowers, for error messages."""


@dataclass
class Op:
    """Mutable op record used between passes (frozen `Layer`s are made at the end)."""

    name: str
    op: str
    module: str = ""
    target: str = ""
    out_shape: Shape = ()
    dims: dict[str, Any] = field(default_factory=dict)
    weight_elems: int = 0
    macs: int = 0
    vector_ops: int = 0
    mod: nn.Module | None = None
    fused: list[str] = field(default_factory=list)
    prologue: list[str] = field(default_factory=list)
    out_quant_bits: int | None = None   # set by a (fused) quantized activation on the output
    in_quant_bits: int | None = None    # set by a quantized activation fused as prologue
    has_bn: bool = False                # a BN is fused on its output (affine: not monotone)
    prologue_bn: bool = False           # a BN is applied to its input as it is read
    # bits the op itself declares (the bits protocol, Brevitas, ONNX Quant nodes); None = unset
    own_w_bits: int | None = None       # a compute op's weights
    own_a_bits: int | None = None       # a compute op's input activations
    quantizer_bits: int | None = None   # a weightless quantizer: the bits of its OUTPUT
    quantized: bool = False             # the op came from a quantized module / quantized weights
    meta: dict[str, Any] = field(default_factory=dict)
    w_bits: int = 16
    a_bits: int = 16
    o_bits: int = 16
    role: str = ""


# -- helpers --------------------------------------------------------------------------------------
def numel(shape: Shape) -> int:
    return math.prod(shape) if shape else 0


def tensor_shape(node: fx.Node) -> Shape | None:
    """Shape of the tensor a node produces; a tuple of tensors -> (total elements,)."""
    tm = node.meta.get("tensor_meta")
    if tm is None:
        return None
    if hasattr(tm, "shape"):
        return tuple(int(d) for d in tm.shape)
    sizes = [numel(tuple(t.shape)) for t in _flat(tm) if hasattr(t, "shape")]
    return (sum(sizes),) if sizes else None


def _flat(obj: Any) -> list[Any]:
    if isinstance(obj, list | tuple) and not hasattr(obj, "shape"):
        return [x for o in obj for x in _flat(o)]
    if isinstance(obj, dict):
        return [x for o in obj.values() for x in _flat(o)]
    return [obj]


def nchw(shape: Shape) -> tuple[int, int, int, int]:
    """(n, c, h, w) view of a tensor shape: 4-D as is, 3-D (n, c, L) -> h=1, 2-D (n, f)."""
    if len(shape) >= 4:
        return shape[0], shape[1], math.prod(shape[2:-1]), shape[-1]
    if len(shape) == 3:
        return shape[0], shape[1], 1, shape[2]
    if len(shape) == 2:
        return shape[0], shape[1], 1, 1
    if len(shape) == 1:
        return 1, shape[0], 1, 1
    return 1, 1, 1, 1


def pair(v: Any, fill: int = 1) -> tuple[int, int]:
    """(H, W) pair of a conv/pool argument; a 1-D (length-only) value gets ``fill`` for H."""
    if isinstance(v, int):
        return v, v
    t = tuple(v)
    return (fill, int(t[0])) if len(t) == 1 else (int(t[0]), int(t[1]))


def _arg_shape(arg: Any) -> Shape:
    """Shape of an fx call argument that is a tensor-valued node, else ()."""
    return (tensor_shape(arg) or ()) if isinstance(arg, fx.Node) else ()


def target_name(node: fx.Node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", repr(t))


def classify(node: fx.Node, gm: fx.GraphModule, n_tensor_inputs: int) -> tuple[str, Any]:
    """(op kind, module or None) for one fx node."""
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        if is_quantized_activation(m):
            return op_kind(m) or "act", m
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d | nn.ConvTranspose2d):
            return "conv", m
        if isinstance(m, nn.Linear):
            return "linear", m
        if isinstance(m, nn.MultiheadAttention):  # a quantized one carries projection_bits
            return "composite", m
        if is_quantized(m):
            raise ExtractError(
                f"module {node.target!r} ({type(m).__name__}) exposes weight_bits/act_bits but "
                "is neither an nn.Conv1d/nn.Conv2d/nn.Linear subclass nor weightless; the bits "
                "protocol (workloads.protocol) cannot lower it. Fix: subclass nn.Conv2d/nn.Linear")
        for types, kind in ((_VIEW_MOD, "view"), (_ACT_MOD, "act"), (_BN_MOD, "bn"),
                            (_RESIZE_MOD, "resize"),
                            (_NORM_MOD, "norm"), (_POOL_MOD, "pool")):
            if isinstance(m, types):
                return kind, m
        if isinstance(m, COMPOSITE_MOD):
            return "composite", m
        return "other", m
    if node.op == "call_function":
        f = node.target
        if f in _ADD_F:
            return ("add" if n_tensor_inputs >= 2 else "act"), None
        if f in _MUL_F:
            return ("mul" if n_tensor_inputs >= 2 else "act"), None
        if f in _CAT_F:
            return "concat", None
        if f in _MATMUL_F:
            return "matmul", None
        if f is torch.einsum:
            return einsum_kind(*_einsum_args(node)), None
        if f is F.scaled_dot_product_attention:
            return "composite", None
        if f is F.linear:
            return "linear", None
        if f in (F.conv2d, F.conv1d) or f in _CONV_T_F:
            return "conv", None
        if f in _VIEW_F:
            return "view", None
        if f in _ACT_F:
            return "act", None
        if f in _POOL_F or f in _REDUCE_F:
            return "pool", None
        if f in _RESIZE_F:
            return "resize", None
        if f is F.batch_norm:
            return "bn", None
        if f in _NORM_F:
            return "norm", None
        if f in _SOURCE_F:
            return "view", None
        return "other", None
    if node.op == "call_method":
        t = str(node.target)
        if t in _ADD_M:
            return ("add" if n_tensor_inputs >= 2 else "act"), None
        if t in _MUL_M:
            return ("mul" if n_tensor_inputs >= 2 else "act"), None
        if t in _MATMUL_M:
            return "matmul", None
        for names, kind in ((_VIEW_M, "view"), (_SOURCE_M, "view"), (_ACT_M, "act"),
                            (_REDUCE_M, "pool"), (_RESIZE_M, "resize")):
            if t in names:
                return kind, None
        return "other", None
    return "other", None


def cost(op: Op, node: fx.Node, acts: list[fx.Node], params: list[fx.Node],
          batch: int) -> None:
    """Fill dims, MACs, weights and vector ops of one op from its module / args and shapes."""
    in_shape = (tensor_shape(acts[0]) or ()) if acts else ()
    out = op.out_shape
    m: Any = op.mod                     # nn.Conv*/nn.Linear/pooling module, or None (functional)
    if op.op == "conv" and (isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d)
                            or node.target in _CONV_T_F):
        _transposed_conv_cost(op, m, node, in_shape)
    elif op.op == "conv":
        if m is not None:
            k_sz, stride, pad, groups = m.kernel_size, m.stride, m.padding, m.groups
            dilation, bias = m.dilation, m.bias is not None
            w_shape: Shape = tuple(m.weight.shape)
        else:                   # F.conv2d(x, weight, bias, stride, padding, dilation, groups)
            a: list[Any] = [*node.args, *([None] * 7)]
            kw: dict[str, Any] = dict(node.kwargs)
            w_shape = _arg_shape(node.args[1])
            k_sz = w_shape[2:]
            stride = kw.get("stride", a[3] if a[3] is not None else 1)
            pad = kw.get("padding", a[4] if a[4] is not None else 0)
            dilation = kw.get("dilation", a[5] if a[5] is not None else 1)
            groups = int(kw.get("groups", a[6] if a[6] is not None else 1))
            bias = (kw.get("bias", a[2]) is not None)
        n, c, h, w = nchw(in_shape)
        _, k, ho, wo = nchw(out)
        r, s = pair(k_sz)
        if isinstance(pad, str):       # 'valid' / 'same': padding that gives the output size
            dil = pair(dilation)
            pad = (0, 0) if pad == "valid" else (dil[0] * (r - 1) // 2, dil[1] * (s - 1) // 2)
        elif isinstance(m, nn.Conv1d) and isinstance(pad, int):
            pad = (0, pad)
        op.dims = dict(n=n, c=c, h=h, w=w, k=k, r=r, s=s, stride=pair(stride),
                       padding=pair(pad, fill=0), groups=groups, ho=ho, wo=wo)
        op.weight_elems = numel(w_shape)
        op.macs = n * k * ho * wo * (c // groups) * r * s          # = numel(out) * C/g * R*S
        if pair(dilation) != (1, 1):
            op.meta["dilation"] = list(pair(dilation))
        if bias:
            op.meta["bias_elems"] = k
    elif op.op == "linear":
        w_shape = tuple(m.weight.shape) if m is not None else _arg_shape(node.args[1])
        c, k = in_shape[-1], out[-1]
        rows = numel(in_shape) // c
        n = batch if rows % batch == 0 else 1
        op.dims = dict(n=n, c=c, h=rows // n, w=1, k=k, ho=rows // n, wo=1)
        op.weight_elems = numel(w_shape)
        op.macs = rows * c * k
        if (m is not None and m.bias is not None) or (m is None and len(node.args) > 2
                                                      and node.args[2] is not None):
            op.meta["bias_elems"] = k
    elif op.op == "matmul":
        if node.target is torch.einsum:
            kdim, ncol, op.vector_ops = einsum_gemm(*_einsum_args(node))
        else:
            operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
            kdim = (tensor_shape(operands[0]) or ())[-1]
            ncol = out[-1] if len(tensor_shape(operands[1]) or ()) > 1 else 1
        rows = numel(out) // ncol
        n = batch if rows % batch == 0 else 1
        op.dims = dict(n=n, c=kdim, h=rows // n, w=1, k=ncol, ho=rows // n, wo=1)
        op.macs = numel(out) * kdim
        op.weight_elems = sum(numel(tensor_shape(p) or ()) for p in params)
    else:
        n, c, h, w = nchw(in_shape)
        _, k, ho, wo = nchw(out)
        op.dims = dict(n=n, c=c, h=h, w=w, k=k, ho=ho, wo=wo)
        if op.op == "pool":
            _pool_cost(op, m, node, in_shape)
        elif op.op == "bn":
            op.vector_ops = 2 * numel(out)          # y = a*x + b per element
        elif op.op in ("add", "mul", "act", "norm", "other", "resize"):
            op.vector_ops = numel(out)
        if op.op == "resize":       # a table it gathers from (an embedding): its weights
            op.weight_elems = (m.weight.numel() if isinstance(m, _LOOKUP_MOD)
                               else sum(numel(tensor_shape(p) or ()) for p in params))
            if isinstance(m, _LOOKUP_MOD) or node.target in _LOOKUP_F:
                _lookup_cost(op, m, node, in_shape, params)
        if op.op == "other":
            op.meta["unsupported"] = type(m).__name__ if m is not None else op.target
            op.weight_elems = sum(p.numel() for p in m.parameters()) if m is not None else 0


def _lookup_cost(op: Op, m: Any, node: fx.Node, ids_shape: Shape, params: list[fx.Node]) -> None:
    """An embedding lookup gathers one table row per index: ``meta["gathered_elems"]`` = indices
    x row width (what it reads from the table). ``nn.EmbeddingBag`` / ``F.embedding_bag`` then
    reduce each bag (sum, mean or max: one vector op per gathered element, one more with
    ``per_sample_weights``); a plain lookup moves its rows (one per output element)."""
    table = tuple(m.weight.shape) if m is not None else (tensor_shape(params[0]) or ())
    width = int(table[-1]) if table else 0
    gathered = numel(ids_shape) * width
    op.meta["gathered_elems"] = gathered
    bag = isinstance(m, nn.EmbeddingBag) or node.target is F.embedding_bag
    if bag:
        index = 2 if m is not None else 8  # per_sample_weights' position in the call
        weighted = (node.args[index] if len(node.args) > index
                    else node.kwargs.get("per_sample_weights")) is not None
        op.vector_ops = gathered * (2 if weighted else 1)


def transposed_conv(op: Op, in_shape: Shape, w_shape: Shape, *, stride: tuple[int, int],
                    padding: tuple[int, int], output_padding: tuple[int, int],
                    dilation: tuple[int, int], groups: int, bias: bool) -> None:
    """Cost a transposed conv (weight ``(C, K/groups, R, S)``, or ``(C, K/groups, L)``) as the
    GEMM PyTorch runs for it (col2im): every input pixel times the whole kernel, a 1x1 conv of C
    inputs to K*R*S columns at the INPUT resolution (MACs = N*H*W*C/groups*K*R*S, torch's flop
    count), whose columns are then scatter-added into the K x Ho x Wo output
    (``meta["col2im_adds"]``). The transposed geometry ((H, W) pairs) is in
    ``meta["transposed"]``; ``k`` is K*R*S, ``ho``/``wo`` the input's H/W."""
    n, c, h, w = nchw(in_shape)
    _, k, ho, wo = nchw(op.out_shape)
    r, s = (int(w_shape[2]), int(w_shape[3])) if len(w_shape) == 4 else (1, int(w_shape[2]))
    op.dims = dict(n=n, c=c, h=h, w=w, k=k * r * s, r=1, s=1, stride=(1, 1), padding=(0, 0),
                   groups=groups, ho=h, wo=w)
    op.weight_elems = numel(w_shape)
    op.macs = n * h * w * (c // groups) * k * r * s
    op.meta["transposed"] = dict(kernel=[r, s], stride=list(stride), padding=list(padding),
                                 output_padding=list(output_padding), dilation=list(dilation),
                                 out_channels=k, out_hw=[ho, wo])
    op.meta["col2im_adds"] = n * k * r * s * h * w
    if bias:
        op.meta["bias_elems"] = k


def _transposed_conv_cost(op: Op, m: Any, node: fx.Node, in_shape: Shape) -> None:
    """`transposed_conv` from the module or the functional call's arguments."""
    if m is not None:
        stride, pad, out_pad = m.stride, m.padding, m.output_padding
        groups, dilation, bias = m.groups, m.dilation, m.bias is not None
        w_shape: Shape = tuple(m.weight.shape)
    else:   # F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dil.)
        a: list[Any] = [*node.args, *([None] * 8)]
        kw: dict[str, Any] = dict(node.kwargs)
        w_shape = _arg_shape(node.args[1])
        stride = kw.get("stride", a[3] if a[3] is not None else 1)
        pad = kw.get("padding", a[4] if a[4] is not None else 0)
        out_pad = kw.get("output_padding", a[5] if a[5] is not None else 0)
        groups = int(kw.get("groups", a[6] if a[6] is not None else 1))
        dilation = kw.get("dilation", a[7] if a[7] is not None else 1)
        bias = kw.get("bias", a[2]) is not None
    one_d = len(w_shape) == 3

    def hw(v: Any, fill: int) -> tuple[int, int]:   # (H, W); a 1-D conv's H is ``fill``
        return pair((v,) if one_d and isinstance(v, int) else v, fill)
    transposed_conv(op, in_shape, w_shape, stride=hw(stride, 1), padding=hw(pad, 0),
                    output_padding=hw(out_pad, 0), dilation=hw(dilation, 1), groups=groups,
                    bias=bias)


def _einsum_args(node: fx.Node) -> tuple[str, list[Shape]]:
    """(equation, operand shapes) of a ``torch.einsum(eq, *operands)`` or ``(eq, [operands])``
    call."""
    args = list(node.args[1:])
    if len(args) == 1 and isinstance(args[0], list | tuple):
        args = list(args[0])
    return str(node.args[0]), [_arg_shape(x) for x in args]


def _pool_cost(op: Op, m: nn.Module | None, node: fx.Node, in_shape: Shape) -> None:
    """Window reads of a pooling op (comparisons for max, adds for average)."""
    out = op.out_shape
    n, c, h, w = nchw(in_shape)
    _, _, ho, wo = nchw(out)
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d | nn.AdaptiveAvgPool1d
                  | nn.AdaptiveMaxPool1d) or node.target in (F.adaptive_avg_pool2d,
                                                             F.adaptive_max_pool2d,
                                                             F.adaptive_avg_pool1d):
        # window of output i along a dim of size L -> Lo: [floor(i*L/Lo), ceil((i+1)*L/Lo))
        def windows(length: int, lo: int) -> list[int]:
            return [-(-(i + 1) * length // lo) - (i * length // lo) for i in range(lo)]
        wh, ww = windows(h, ho), windows(w, wo)
        op.dims.update(r=max(wh), s=max(ww))
        op.vector_ops = n * c * sum(wh) * sum(ww)
    elif m is not None and hasattr(m, "kernel_size"):
        one_d = isinstance(m, nn.MaxPool1d | nn.AvgPool1d)     # a 1-D window spans W only
        stride = m.stride if m.stride is not None else m.kernel_size
        r, s = (1, pair(m.kernel_size)[1]) if one_d else pair(m.kernel_size)
        op.dims.update(r=r, s=s, stride=(1, pair(stride)[1]) if one_d else pair(stride),
                       padding=(0, pair(m.padding)[1]) if one_d else pair(m.padding, fill=0))
        op.vector_ops = numel(out) * r * s
    elif node.target in _POOL_F:    # F.max_pool2d(x, kernel_size, stride=None, padding=0, ...)
        a: list[Any] = [*node.args, None, None, None]
        kernel = node.kwargs.get("kernel_size", a[1])
        stride = node.kwargs.get("stride", a[2]) or kernel       # None / () -> the kernel
        padding = node.kwargs.get("padding", a[3] if a[3] is not None else 0)
        one_d = node.target in _POOL_1D_F       # a 1-D window spans W only (H = 1)
        r, s = pair(kernel, fill=1) if not one_d else (1, pair(kernel)[1])
        op.dims.update(r=r, s=s, stride=pair(stride) if not one_d else (1, pair(stride)[1]),
                       padding=pair(padding, fill=0) if not one_d else (0, pair(padding)[1]))
        op.vector_ops = numel(out) * r * s
    else:                                                   # mean / sum / amax reductions
        op.dims.update(r=max(1, h), s=max(1, w))
        op.vector_ops = numel(in_shape)
    op.meta["pool"] = type(m).__name__ if m is not None else op.target
