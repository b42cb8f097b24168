"""`from_onnx`: an ONNX model (QONNX and QCDQ quantized ones included) -> `Workload`.

The ONNX graph is read with the ``onnx`` package (optional extra ``qdse[onnx]``), its shapes
inferred with ``onnx.shape_inference`` for the batch asked for, and each node turned into the same
`Op` record `workloads.extract` builds from torch.fx; from there the two share the lowering passes
(`workloads.lower.lower_ops`: collapse views, fuse BN/activations, bits, roles). So a model
exported with ``torch.onnx.export`` gives the MACs and layer shapes `extract` gives for the module.

Op mapping (ONNX operator -> qdse op):

* ``conv``: Conv (``group`` for grouped and depthwise; 1-D convolutions as H = 1), ConvTranspose
  (the col2im GEMM of `workloads.ops.transposed_conv`);
* ``linear``: Gemm and MatMul whose second operand is a constant matrix (weights);
  ``matmul``: MatMul / Gemm of two activations, Einsum of two operands (`workloads.einsum`);
* ``pool``: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, LpPool, ReduceMean/Max/Sum;
* ``add`` / ``mul``: Add, Sub / Mul, Div of two activations (with a constant: element-wise ``act``);
* ``act``: Relu, Clip, Sigmoid, Tanh, Softmax, ... and the activation quantizers below;
* ``bn`` BatchNormalization; ``norm`` Layer/Group/InstanceNormalization, LRN; ``concat``
  Concat; ``resize`` Resize, Upsample, Pad, Tile, DepthToSpace, SpaceToDepth;
* LSTM / GRU / RNN (one layer, one or two directions): the ``ih`` / ``hh`` GEMMs and ``cell``
  of `workloads.composite`;
* views (no cost): Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Identity, Dropout, Slice,
  Gather, Split, Expand, Cast, DequantizeLinear.

Nodes computed from constants only (weight quantizers, Shape arithmetic, Constant) are folded into
the weights of the op that reads them.

Bits. A QONNX ``Quant`` node (its ``bitwidth`` input), ``BipolarQuant`` (1 bit) or ``Trunc`` (its
output bit width), or a QCDQ ``QuantizeLinear`` (bits of its output type: int8 -> 8, int4 -> 4;
a ``Clip`` right after it narrows them: [-8, 7] -> 4, as Brevitas writes sub-8-bit QCDQ)
on a weight sets that layer's ``w_bits``; a DequantizeLinear reading an integer initializer
directly sets them from the initializer's type. On an activation such a node is a quantizer (the
ONNX counterpart of a ``QuantAct``): it sets the ``o_bits`` of the tensor it writes and the
``a_bits`` of the compute ops reading it, by the rules of `workloads.extract`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from workloads.composite import Recurrent, recurrent_ops
from workloads.einsum import einsum_gemm, einsum_kind
from workloads.graph import Workload
from workloads.lower import add_edge, lower_ops
from workloads.ops import Op, Shape, nchw, numel, transposed_conv
from workloads.protocol import check_bits
from workloads.unsupported import IgnoreSpec, check_ignore, ignored, unsupported_error

__all__ = ["ONNX_OPS", "from_onnx"]

_VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout",
         "Slice", "Gather", "Split", "Expand", "Cast", "DequantizeLinear", "CastLike"}
_ACT = {"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu",
        "Elu", "Selu", "Celu", "Softplus", "Softsign", "Softmax", "LogSoftmax", "Exp", "Log",
        "Sqrt", "Reciprocal", "Pow", "Erf", "Neg", "Abs", "PRelu", "Where", "Sign", "Round",
        "Floor", "Ceil", "Mish", "ThresholdedRelu", "Not", "Equal", "Less", "Greater"}
_BINARY = {"Add": "add", "Sub": "add", "Max": "add", "Min": "add", "Mul": "mul", "Div": "mul"}
_POOL = {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
         "GlobalLpPool", "ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin", "ReduceL2"}
_NORM = {"LayerNormalization", "GroupNormalization", "InstanceNormalization", "LRN"}
_RESIZE = {"Resize", "Upsample", "Pad", "Tile", "DepthToSpace", "SpaceToDepth"}
_QUANT = {"Quant", "BipolarQuant", "Trunc", "QuantizeLinear"}
# ops whose output is known without the activations' values: shape bookkeeping, constants
_STATIC = {"Constant", "Shape", "Size", "ConstantOfShape", "Range"}
_RECURRENT = {"LSTM", "GRU", "RNN"}
ONNX_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "BatchNormalization",
                      "Concat", *_RECURRENT,
                      *_VIEW, *_ACT,
                      *_BINARY, *_POOL, *_NORM, *_RESIZE, *_QUANT})
"""The ONNX operators `from_onnx` lowers (others raise unless ``ignore_unsupported``)."""

# bits of an integer / low-precision element type (onnx.TensorProto data types by name)
_TYPE_BITS = {"INT8": 8, "UINT8": 8, "INT16": 16, "UINT16": 16, "INT32": 32, "UINT32": 32,
              "INT4": 4, "UINT4": 4, "INT2": 2, "UINT2": 2, "FLOAT8E4M3FN": 8,
              "FLOAT8E4M3FNUZ": 8, "FLOAT8E5M2": 8, "FLOAT8E5M2FNUZ": 8, "FLOAT4E2M1": 4}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise ImportError("workloads.from_onnx needs the 'onnx' package: pip install "
                          "'qdse[onnx]' (or pip install onnx)") from e
    return onnx


def from_onnx(model: str | Path | Any, *, batch: int | None = None, default_bits: int = 16,
              overrides: Mapping[str, Any] | None = None, name: str = "",
              ignore_unsupported: IgnoreSpec = False) -> Workload:
    """Lower an ONNX model (a ``.onnx`` path or an ``onnx.ModelProto``) to a `Workload`.

    ``batch``: images per inference; None takes the model's own batch (a symbolic batch
    dimension, as ``dynamic_axes`` exports write, becomes 1). A fixed batch different from
    ``batch`` raises. ``default_bits``, ``overrides`` (by layer name: the ONNX node names) and
    ``ignore_unsupported`` mean what they mean for `workloads.extract`; bits set by QONNX/QCDQ
    quantizer nodes come first (see the module doc-string). Raises ValueError naming the file,
    node or field at fault.
    """
    onnx = _onnx()
    check_bits(default_bits, "default_bits")
    ignore = check_ignore(ignore_unsupported)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch={batch!r} is invalid; expected an int >= 1 or None")
    proto, label = _load(onnx, model)
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in inits]
    if not inputs:
        raise ValueError(f"ONNX model {label}: graph has no input; expected at least one")
    batch = _fix_batch(inputs, batch, label)
    shapes = _infer_shapes(onnx, proto, label)
    const = _constants(graph, inits)
    g = nx.DiGraph()
    producer: dict[str, str] = {}
    for i, v in enumerate(inputs):
        op_name = "input" if i == 0 else f"input:{v.name}"
        g.add_node(op_name, op=Op(op_name, "input", out_shape=shapes[v.name]))
        producer[v.name] = op_name
    taken = set(producer.values()) | {"output"}
    unsupported: list[tuple[Op, str]] = []
    bits = _ConstBits(onnx, graph, inits)
    for index, node in enumerate(graph.node):
        if all(o in const or not o for o in node.output):
            continue
        acts = [t for t in node.input if t and t not in const]
        if node.op_type in _RECURRENT:
            exit_op = _recurrent(node, index, taken, acts, shapes, bits, batch, g, producer)
            producer.update({o: exit_op for o in node.output if o})
            continue
        op = _op(node, index, taken, acts, shapes, inits, bits, batch)
        taken.add(op.name)
        if op.op == "other" and not ignored(op, ignore):
            unsupported.append((op, f"node {op.name!r} (ONNX {node.op_type}) is not an operator "
                                    f"qdse lowers (allowed: {', '.join(sorted(ONNX_OPS))})"))
        g.add_node(op.name, op=op)
        for t in acts:
            if t not in producer:
                raise ValueError(f"ONNX model {label}: node {op.name!r} reads {t!r}, which no "
                                 "node, input or initializer produces")
            add_edge(g, producer[t], op.name, shapes.get(t, ()))
        for o in node.output:
            if o:
                producer[o] = op.name
    if unsupported:
        raise unsupported_error(unsupported, "from_onnx")
    g.add_node("output", op=Op("output", "output"))
    for v in graph.output:
        add_edge(g, producer[v.name], "output", shapes.get(v.name, ()))
    first = shapes[inputs[0].name]
    return lower_ops(g, batch=batch, input_shape=tuple(first[1:]), default_bits=default_bits,
                     overrides=overrides, name=name or graph.name or label)


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (error messages are single lines for the CLIs)."""
    return " ".join(str(e).split())


def _load(onnx: Any, model: object) -> tuple[Any, str]:
    """(ModelProto, label for messages) from a path or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)              # the batch is written into the inputs: a private copy
        return proto, repr(model.graph.name or "<ModelProto>")
    if not isinstance(model, str | Path):
        raise ValueError(f"model={type(model).__name__} is invalid; expected a path to a .onnx "
                         "file or an onnx.ModelProto")
    path = Path(model)
    if not path.is_file():
        raise ValueError(f"model={str(path)!r}: no such file; expected a path to a .onnx file")
    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise ValueError(f"model={str(path)!r} is not a readable ONNX file ({type(e).__name__}: "
                         f"{_one_line(e)}); expected an ONNX ModelProto, e.g. from "
                         "torch.onnx.export") from e
    if not proto.graph.node:
        raise ValueError(f"model={str(path)!r} is not a readable ONNX file: its graph has no "
                         "nodes; expected an ONNX ModelProto, e.g. from torch.onnx.export")
    return proto, repr(str(path))


def _fix_batch(inputs: list[Any], batch: int | None, label: str) -> int:
    """Set every input's first dimension to the batch and check the others are fixed."""
    dims0 = [v.type.tensor_type.shape.dim for v in inputs]
    static = [d[0].dim_value for d in dims0 if d and d[0].HasField("dim_value")]
    if batch is None:
        batch = static[0] if static else 1
    for v, dims in zip(inputs, dims0):
        if not dims:
            raise ValueError(f"ONNX model {label}: input {v.name!r} has no shape; expected "
                             "(batch, ...) with fixed sizes")
        if dims[0].HasField("dim_value") and dims[0].dim_value != batch:
            raise ValueError(f"batch={batch} but ONNX model {label} has input {v.name!r} of "
                             f"fixed batch {dims[0].dim_value}; export it with that batch or "
                             "with a dynamic batch axis")
        dims[0].dim_value = batch
        for i, d in enumerate(dims[1:], start=1):
            if not d.HasField("dim_value"):
                raise ValueError(f"ONNX model {label}: input {v.name!r} dimension {i} is "
                                 f"symbolic ({d.dim_param!r}); only the batch (dimension 0) may "
                                 "be; export with a fixed input size")
    return batch


def _infer_shapes(onnx: Any, proto: Any, label: str) -> dict[str, Shape]:
    """Tensor name -> shape. Quantizer nodes of custom domains (QONNX) are element-wise: they
    are replaced by Identity in a copy so ONNX's inference can pass through them."""
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    for node in work.graph.node:
        if node.domain not in ("", "ai.onnx") and node.op_type in _QUANT:
            del node.input[1:]
            del node.attribute[:]
            node.op_type, node.domain = "Identity", ""
    try:
        inferred = onnx.shape_inference.infer_shapes(work, data_prop=True)
    except Exception as e:
        raise ValueError(f"ONNX model {label}: shape inference failed ({type(e).__name__}: "
                         f"{_one_line(e)})") from e
    shapes: dict[str, Shape] = {}
    g = inferred.graph
    for v in (*g.input, *g.value_info, *g.output):
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(int(d.dim_value) for d in dims)
    for t in g.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)
    return shapes


def _constants(graph: Any, inits: Mapping[str, Any]) -> set[str]:
    """Tensors known without the input's values: initializers and what only they determine."""
    const = set(inits)
    for node in graph.node:
        ins = [t for t in node.input if t]
        if node.op_type in _STATIC or all(t in const for t in ins):
            const.update(o for o in node.output if o)
    return const


class _ConstBits:
    """Bits of a constant tensor (a weight) as set by the quantizer nodes that computed it."""

    def __init__(self, onnx: Any, graph: Any, inits: Mapping[str, Any]) -> None:
        self.onnx, self.inits = onnx, inits
        self.made_by = {o: n for n in graph.node for o in n.output if o}

    def value(self, name: str) -> float | None:
        """The scalar an initializer or Constant node holds, else None."""
        t = self.inits.get(name)
        if t is None and name in self.made_by and self.made_by[name].op_type == "Constant":
            t = next((a.t for a in self.made_by[name].attribute if a.name == "value"), None)
        if t is None:
            return None
        arr = self.onnx.numpy_helper.to_array(t)
        return float(arr.reshape(-1)[0]) if arr.size == 1 else None

    def type_bits(self, name: str) -> int | None:
        t = self.inits.get(name)
        if t is None:
            return None
        return _TYPE_BITS.get(self.onnx.TensorProto.DataType.Name(t.data_type))

    def quantizer_bits(self, node: Any) -> int | None:
        """Bits a quantizer node writes (None for a node that is not one). A Clip right after a
        QuantizeLinear narrows its integers (QCDQ's sub-8-bit form): ceil(log2(max - min + 1))."""
        if node.op_type == "Clip":
            before = self.made_by.get(node.input[0])
            if before is None or before.op_type != "QuantizeLinear":
                return None
            a = _attrs(node)
            lo = self.value(node.input[1]) if len(node.input) > 1 and node.input[1] else \
                a.get("min")
            hi = self.value(node.input[2]) if len(node.input) > 2 and node.input[2] else \
                a.get("max")
            if lo is None or hi is None or hi < lo:
                return None
            return max(1, math.ceil(math.log2(hi - lo + 1)))
        if node.op_type == "BipolarQuant":
            return 1
        if node.op_type in ("Quant", "Trunc"):
            v = self.value(node.input[3 if node.op_type == "Quant" else 4])
            return math.ceil(v) if v is not None else None
        if node.op_type == "QuantizeLinear":
            for a in node.attribute:
                if a.name == "output_dtype" and a.i:
                    return _TYPE_BITS.get(self.onnx.TensorProto.DataType.Name(a.i))
            zp = node.input[2] if len(node.input) > 2 else ""
            return (self.type_bits(zp) or self._constant_type_bits(zp)) if zp else 8
        return None

    def _constant_type_bits(self, name: str) -> int | None:
        node = self.made_by.get(name)
        if node is None or node.op_type != "Constant":
            return None
        t = next((a.t for a in node.attribute if a.name == "value"), None)
        return _TYPE_BITS.get(self.onnx.TensorProto.DataType.Name(t.data_type)) if t else None

    def weight_bits(self, name: str) -> int | None:
        """Walk back from a weight through constant-only nodes to the quantizer that set it."""
        seen: set[str] = set()
        stack = [name]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            node = self.made_by.get(t)
            if node is None:
                continue
            if node.op_type in _QUANT or (node.op_type == "Clip" and self.quantizer_bits(node)):
                return self.quantizer_bits(node)
            if node.op_type == "DequantizeLinear" and self.type_bits(node.input[0]):
                return self.type_bits(node.input[0])
            stack.extend(i for i in node.input[:1] if i)
        return None


def _attrs(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.ints:
            out[a.name] = list(a.ints)
        elif a.type == a.INT:
            out[a.name] = a.i
        elif a.type == a.FLOAT:
            out[a.name] = a.f
        elif a.type == a.STRING:
            out[a.name] = a.s.decode()
    return out


def _module_of(node: Any) -> str:
    """The nn.Module path torch.onnx recorded: dynamo's name scopes, or the scopes of the legacy
    exporter's node name (``/layer2/layer2.0/shortcut/shortcut.0/Conv`` ->
    ``layer2.0.shortcut.0``); '' if neither."""
    scopes: list[str] = []
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:       # the last scope is the fx node itself (conv2d, relu, ...)
                scopes = [str(x) for x in ast.literal_eval(p.value)][:-1]
            except (ValueError, SyntaxError):
                scopes = []
    if not scopes and node.name.startswith("/"):
        scopes = node.name.split("/")[1:-1]
    path: list[str] = []
    for c in (c for c in scopes if c):
        if path and (c.startswith(".".join(path) + ".")):
            path = [c]                        # already qualified from the root
        elif path and "." in c and c.rsplit(".", 1)[0] == path[-1]:
            path[-1] = c                      # a container's child: 'layer1' -> 'layer1.0'
        else:
            path.append(c)
    return ".".join(path)


def _op(node: Any, index: int, taken: set[str], acts: list[str], shapes: Mapping[str, Shape],
        inits: Mapping[str, Any], bits: _ConstBits, batch: int) -> Op:
    """One ONNX node -> a costed `Op` (dims, MACs, weights, bits)."""
    t = node.op_type
    a = _attrs(node)
    operands = [shapes.get(i, ()) for i in node.input]
    kind = einsum_kind(a.get("equation", ""), operands) if t == "Einsum" else _kind(node, acts)
    weights = [i for i in node.input if i and i not in acts]
    # layers are named like extract's: by the module path of their weight parameter
    # ('layer1.0.conv1.weight', the name torch.onnx gives it unless it folded a BN in), else the
    # scope the exporter recorded, else the ONNX node name
    param = next((w for w in weights if w in inits and w.endswith(".weight")), "")
    module = param[:-len(".weight")] if param and kind in ("conv", "linear") else _module_of(node)
    name = module if module and module not in taken else (node.name or f"{t}_{index}")
    while name in taken:
        name += "_"
    out = shapes.get(node.output[0], ()) if node.output else ()
    in_shape = shapes.get(acts[0], ()) if acts else ()
    op = Op(name, kind, module=module, target=t, out_shape=out)
    if t == "ConvTranspose":
        _conv_transpose(op, in_shape, shapes.get(node.input[1], ()), a)
        if len(node.input) > 2 and node.input[2]:
            op.meta["bias_elems"] = op.meta["transposed"]["out_channels"]
        op.own_w_bits = bits.weight_bits(node.input[1])
    elif op.op == "conv":
        w = shapes.get(node.input[1], ())
        n, c, h, wd = nchw(in_shape)
        _, k, ho, wo = nchw(out)
        r, s = (w[2], w[3]) if len(w) == 4 else (1, w[2] if len(w) == 3 else 1)
        groups = int(a.get("group", 1))
        strides = a.get("strides", [1, 1])
        pads = _pads(a, in_shape, out, list(w[2:]), strides)
        if len(w) == 3:                       # 1-D: (N, C, L) as H = 1
            strides, pads = [1, strides[0]], [0, pads[0]]
        op.dims = dict(n=n, c=c, h=h, w=wd, k=k, r=r, s=s, stride=(strides[0], strides[1]),
                       padding=(pads[0], pads[1]), groups=groups, ho=ho, wo=wo)
        op.macs = n * k * ho * wo * (c // groups) * r * s
        op.weight_elems = numel(w)
        if len(node.input) > 2 and node.input[2]:
            op.meta["bias_elems"] = k
        if any(d != 1 for d in a.get("dilations", [1])):
            op.meta["dilation"] = a["dilations"]
        op.own_w_bits = bits.weight_bits(node.input[1])
    elif op.op == "linear":
        wname = weights[0]
        w = shapes.get(wname, ())
        trans_b = t == "Gemm" and a.get("transB", 0)
        c, k = (w[1], w[0]) if trans_b else (w[0], w[1])
        rows = numel(out) // k
        n = batch if rows % batch == 0 else 1
        op.dims = dict(n=n, c=c, h=rows // n, w=1, k=k, ho=rows // n, wo=1)
        op.macs = rows * c * k
        op.weight_elems = numel(w)
        if len(weights) > 1 or (t == "Gemm" and len(node.input) > 2 and node.input[2]):
            op.meta["bias_elems"] = k
        op.own_w_bits = bits.weight_bits(wname)
    elif op.op == "matmul":
        a_shape, b_shape = operands[0], operands[1]
        if t == "Einsum":
            kdim, ncol, op.vector_ops = einsum_gemm(a["equation"], operands)
        else:
            kdim = a_shape[-2] if t == "Gemm" and a.get("transA", 0) else a_shape[-1]
            ncol = out[-1] if len(b_shape) > 1 else 1
        rows = numel(out) // ncol
        n = batch if rows % batch == 0 else 1
        op.dims = dict(n=n, c=kdim, h=rows // n, w=1, k=ncol, ho=rows // n, wo=1)
        op.macs = numel(out) * kdim
        op.weight_elems = sum(numel(shapes.get(x, ())) for x in weights)
    else:
        n, c, h, wd = nchw(in_shape)
        _, k, ho, wo = nchw(out)
        op.dims = dict(n=n, c=c, h=h, w=wd, k=k, ho=ho, wo=wo)
        if op.op == "pool":
            _pool(op, node, a, in_shape)
        elif op.op == "bn":
            op.vector_ops = 2 * numel(out)
        elif op.op in ("add", "mul", "act", "norm", "resize"):
            op.vector_ops = numel(out)
        if t in _QUANT or t == "Clip":
            op.quantizer_bits = bits.quantizer_bits(node)
        if op.op == "other":
            op.meta["unsupported"] = t
    if op.own_w_bits is not None or op.quantizer_bits is not None:
        op.quantized = True
    return op


def _recurrent(node: Any, index: int, taken: set[str], acts: list[str],
               shapes: Mapping[str, Shape], bits: _ConstBits, batch: int, g: nx.DiGraph,
               producer: dict[str, str]) -> str:
    """An ONNX LSTM / GRU / RNN node (one layer, one or two directions) -> the ops of
    `workloads.composite.recurrent_ops`, added to ``g``; returns the op that is its output."""
    a = _attrs(node)
    x_shape = shapes.get(node.input[0], ())
    w_shape = shapes.get(node.input[1], ())
    if len(x_shape) != 3 or len(w_shape) != 3:
        raise ValueError(f"ONNX {node.op_type} node {node.name!r}: input shapes {x_shape} / "
                         f"{w_shape} are not (seq, batch, input) / (dirs, gates, input)")
    t, n = (x_shape[1], x_shape[0]) if a.get("layout", 0) else (x_shape[0], x_shape[1])
    module = _module_of(node)
    name = module if module and module not in taken else (node.name or f"{node.op_type}_{index}")
    spec = Recurrent(cell=node.op_type, hidden=int(a["hidden_size"]),
                     dirs=2 if a.get("direction") == "bidirectional" else 1,
                     bias=len(node.input) > 3 and bool(node.input[3]))
    states = [s for s in node.input[5:] if s in acts]
    # time on the batch axis only for a seq-first X read straight from a graph input (the
    # torch exporter transposes a batch_first input into layout 0: its batch axis stays N)
    time_major = not a.get("layout", 0) and producer.get(node.input[0], "").startswith("input")
    ex = recurrent_ops(name, spec, n, t, w_shape[2], batch, node.input[0], states,
                       time_major=time_major)
    w_bits, r_bits = bits.weight_bits(node.input[1]), bits.weight_bits(node.input[2])
    for op in ex.ops:
        op.module = name
        if op.name.endswith(".ih"):
            op.own_w_bits = w_bits
        elif op.name.endswith(".hh"):
            op.own_w_bits = r_bits
        op.quantized = op.own_w_bits is not None
        taken.add(op.name)
        g.add_node(op.name, op=op)
    for u, v, shape in ex.edges:
        add_edge(g, u, v, shape)
    for tensor, reader in ex.reads:
        add_edge(g, producer[tensor], reader, shapes.get(tensor, ()))
    return ex.exit


def _conv_transpose(op: Op, in_shape: Shape, w: Shape, a: Mapping[str, Any]) -> None:
    """ConvTranspose attributes ((H, W) pairs; a 1-D one's H is the neutral value)."""
    d = len(w) - 2

    def hw(key: str, neutral: int) -> tuple[int, int]:
        v = list(a.get(key, [neutral] * d))
        return (int(v[0]), int(v[1])) if d == 2 else (neutral, int(v[0]))
    transposed_conv(op, in_shape, w, stride=hw("strides", 1), padding=hw("pads", 0),
                    output_padding=hw("output_padding", 0), dilation=hw("dilations", 1),
                    groups=int(a.get("group", 1)), bias=False)


def _pads(a: Mapping[str, Any], in_shape: Shape, out_shape: Shape, kernel: list[int],
          strides: list[int]) -> list[int]:
    """ONNX ``pads`` ([x1_begin, x2_begin, ..., x1_end, x2_end, ...]) of a Conv or pool node:
    the attribute, or what ``auto_pad`` implies - SAME_UPPER / SAME_LOWER pad the input to the
    output size (the odd one at the end / the beginning), VALID not at all."""
    d = len(kernel)
    mode = a.get("auto_pad", "NOTSET")
    if mode == "VALID":
        return [0] * (2 * d)
    if mode not in ("SAME_UPPER", "SAME_LOWER") or len(in_shape) != d + 2 or \
            len(out_shape) != d + 2:
        return list(a.get("pads", [0] * (2 * d)))
    dilations = a.get("dilations", [1] * d)
    total = [max(0, (o - 1) * s + (k - 1) * dl + 1 - i) for i, o, k, s, dl in
             zip(in_shape[2:], out_shape[2:], kernel, strides, dilations, strict=False)]
    begin = [t // 2 if mode == "SAME_UPPER" else t - t // 2 for t in total]
    return begin + [t - b for t, b in zip(total, begin, strict=True)]


def _kind(node: Any, acts: list[str]) -> str:
    t = node.op_type
    if t in ("Conv", "ConvTranspose"):
        return "conv"
    if t in ("Gemm", "MatMul"):
        const_b = len(node.input) > 1 and node.input[1] not in acts
        return "linear" if const_b and node.input[0] in acts else "matmul"
    if t in _BINARY:
        return _BINARY[t] if len(acts) >= 2 else "act"
    if t == "Concat":
        return "concat"
    for ops, kind in ((_VIEW, "view"), (_ACT, "act"), (_QUANT, "act"), (_POOL, "pool"),
                      (_NORM, "norm"), (_RESIZE, "resize")):
        if t in ops:
            return kind
    return "bn" if t == "BatchNormalization" else "other"


def _pool(op: Op, node: Any, a: Mapping[str, Any], in_shape: Shape) -> None:
    """Window reads: numel(out) * R * S for windowed pools, every input element for global
    pools and reductions (the counts `workloads.ops` gives the torch equivalents)."""
    op.meta["pool"] = node.op_type
    kernel = a.get("kernel_shape")
    if kernel:
        r, s = (kernel[0], kernel[1]) if len(kernel) > 1 else (1, kernel[0])
        strides = a.get("strides", [1] * len(kernel))    # ONNX's default stride is 1
        pads = _pads(a, in_shape, op.out_shape, kernel, strides)
        stride = (strides[0], strides[1]) if len(strides) > 1 else (1, strides[0])
        pad = (pads[0], pads[1]) if len(kernel) > 1 else (0, pads[0])
        op.dims.update(r=r, s=s, stride=stride, padding=pad)
        op.vector_ops = numel(op.out_shape) * r * s
    else:
        _, _, h, w = nchw(in_shape)
        op.dims.update(r=max(1, h), s=max(1, w))
        op.vector_ops = numel(in_shape)
