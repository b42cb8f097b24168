"""ONNX export of a fake-quantized chain model: QCDQ (``QuantizeLinear``/``DequantizeLinear``,
runs in onnxruntime) and QONNX (``Quant`` nodes carrying their bit widths).

Both are built from :func:`quant.integer.to_integer`'s plans, like :mod:`quant.deploy`, for the
same chain models (Conv1d/Conv2d/Linear with a folded BN, QuantAct, ReLU, MaxPool1d/2d, Flatten,
Dropout; a conv becomes an ONNX ``Conv`` with 1-D or 2-D kernel_shape/pads/strides/dilations and
its group count, a max pool a ``MaxPool`` likewise):

* weights: integer codes as an ``int8`` initializer, dequantized per output channel with the
  (BN-folded) scale; the bias is the folded real bias (the fake-quant model's, unclamped);
* activations: ``Clip`` to the grid's range, then ``QuantizeLinear`` -> ``DequantizeLinear``
  with the grid step (``uint8``/``int8``; the clip keeps codes in ``[qmin, qmax]`` of k bits).
  ONNX rounds half to even, as ``torch.round`` does.

QONNX writes the same graph with one ``Quant`` node (domain ``qonnx.custom_op.general``: inputs
x, scale, zero point, bit width; attributes signed, narrow, rounding_mode) per quantizer, the
format FINN and QONNX tools read; onnxruntime cannot run it.

Needs the ``onnx`` package (and ``onnxruntime`` to run the QCDQ file): the optional extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from quant.grids import Grid, _weight_codes
from quant.integer import IntegerModel, to_integer
from quant.integer_ops import _conv_pads
from quant.modules import QuantAct, QuantConv1d, QuantConv2d, QuantLinear

__all__ = ["export_onnx"]

QONNX_DOMAIN = "qonnx.custom_op.general"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ValueError("ONNX export needs the onnx package: pip install onnx onnxruntime "
                         "(the optional ONNX extra)") from None
    return onnx


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, ...], *,
                fmt: Literal["qcdq", "qonnx"] = "qcdq", opset: int = 13) -> Path:
    """Write ``model`` (a fake-quantized chain model) as ONNX to ``path``; return the path.

    ``input_shape`` is one example's shape (C, H, W), (C, L) or (features,); the batch is
    dynamic.
    Raises ValueError for an unsupported model, a bad ``fmt`` or a ``path`` that cannot be
    written (naming it)."""
    if fmt not in ("qcdq", "qonnx"):
        raise ValueError(f"fmt={fmt!r} is not allowed; use 'qcdq' or 'qonnx'")
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    im = to_integer(model, acc_bits=32, bias_bits=32)  # plans only; no bias clamp in ONNX
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(value: Any, prefix: str, dtype: torch.dtype | None = None) -> str:
        t = torch.as_tensor(value)
        if dtype is not None:
            t = t.to(dtype)
        n = name(prefix)
        inits.append(numpy_helper.from_array(t.detach().cpu().numpy(), n))
        return n

    def quant_act(x: str, grid: Grid, bits: int) -> str:
        signed = grid.qmin < 0
        if fmt == "qonnx":
            out = name("quant")
            nodes.append(helper.make_node(
                "Quant", [x, const(grid.step, "scale", torch.float32),
                          const(0.0, "zeropt", torch.float32),
                          const(float(bits), "bitwidth", torch.float32)], [out],
                domain=QONNX_DOMAIN, signed=int(signed), narrow=0, rounding_mode="ROUND"))
            return out
        clipped = name("clip")
        nodes.append(helper.make_node("Clip", [x, const(grid.qmin * grid.step, "lo",
                                                         torch.float32),
                                               const(grid.qmax * grid.step, "hi",
                                                     torch.float32)], [clipped]))
        s = const(grid.step, "scale", torch.float32)
        zp = const(0, "zp", torch.int8 if signed else torch.uint8)
        q, dq = name("q"), name("dq")
        nodes.append(helper.make_node("QuantizeLinear", [clipped, s, zp], [q]))
        nodes.append(helper.make_node("DequantizeLinear", [q, s, zp], [dq]))
        return dq

    x = "input"
    prev = None
    for node in im._graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op != "call_module" or (prev is not None and node.args[0] is not prev):
            raise ValueError(f"export_onnx: node {node.name!r} is not a layer of a chain")
        prev = node
        mod = im._mods[node.target]
        if node.name in im._alias:
            continue
        if isinstance(mod, QuantConv1d | QuantConv2d | QuantLinear):
            x = _layer(im, node.target, mod, x, quant_act, const, name, nodes, fmt, helper)
        elif isinstance(mod, QuantAct):
            if mod.pre is not None:
                out = name("relu")
                nodes.append(helper.make_node("Relu", [x], [out]))
                x = out
            x = quant_act(x, im._act_grids[node.target], int(mod.act_bits))
        elif isinstance(mod, nn.ReLU | nn.MaxPool1d | nn.MaxPool2d | nn.Flatten | nn.Dropout
                        | nn.Identity):
            x = _simple(mod, x, name, nodes, helper)
        else:
            raise ValueError(f"export_onnx: module {node.target!r} ({type(mod).__name__}) is "
                             "not supported")
    nodes.append(helper.make_node("Identity", [x], ["output"]))
    graph = helper.make_graph(
        nodes, "qdse", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                      ["batch", *input_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", "out"])], inits)
    opsets = [helper.make_opsetid("", opset)]
    if fmt == "qonnx":
        opsets.append(helper.make_opsetid(QONNX_DOMAIN, 1))
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="qdse")
    if fmt == "qcdq":
        onnx.checker.check_model(proto)
    path = Path(path)
    try:
        onnx.save(proto, str(path))
    except OSError as err:
        raise ValueError(f"path: cannot write {str(path)!r} ({err.strerror or err}; allowed: a "
                         "file path in a folder you can write)") from None
    return path


def _layer(im: IntegerModel, target: str, mod: QuantConv1d | QuantConv2d | QuantLinear, x: str,
           quant_act: Any, const: Any, name: Any, nodes: list[Any], fmt: str,
           helper: Any) -> str:
    plan = im._plans[target]
    if plan.in_grid is not None:
        x = quant_act(x, plan.in_grid, int(mod.act_bits or 8))
    # the unfolded weights and bias, with the BN as its own node: the fake-quant model's order
    # of operations (a float fold moves values across the next quantizer's rounding edges)
    codes, w_scale = _weight_codes(mod, f"layer {target!r}")
    scale = w_scale.float()
    bn = im._folded.get(target)
    w_bits = int(mod.weight_bits or 8)
    if fmt == "qonnx":
        real = const((codes.double() * w_scale.view(-1, *[1] * (codes.dim() - 1))).float(),
                     "w")
        w = name("wq")
        shape = [-1, *[1] * (codes.dim() - 1)]
        nodes.append(helper.make_node(
            "Quant", [real, const(scale.view(shape), "wscale"), const(0.0, "zeropt",
                                                                       torch.float32),
                      const(float(w_bits), "bitwidth", torch.float32)], [w],
            domain=QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND"))
    else:
        w = name("w")
        nodes.append(helper.make_node(
            "DequantizeLinear", [const(codes, "wcodes", torch.int8), const(scale, "wscale"),
                                 const(torch.zeros(codes.shape[0]), "wzp", torch.int8)], [w],
            axis=0))
    bias = mod.bias.detach().float() if mod.bias is not None else torch.zeros(codes.shape[0])
    b = const(bias, "bias")
    out = name("gemm" if isinstance(mod, QuantLinear) else "conv")
    if isinstance(mod, QuantConv1d | QuantConv2d):
        pads = _conv_pads(mod)  # ONNX order: every dim's begin, then every dim's end
        nodes.append(helper.make_node(
            "Conv", [x, w, b], [out], kernel_shape=list(mod.kernel_size),
            strides=list(mod.stride), dilations=list(mod.dilation), group=int(mod.groups),
            pads=[lo for lo, _ in pads] + [hi for _, hi in pads]))
    else:
        nodes.append(helper.make_node("Gemm", [x, w, b], [out], transB=1))
    if bn is not None:
        y = name("bn")
        nodes.append(helper.make_node(
            "BatchNormalization", [out, const(bn.weight.detach().float(), "gamma"),
                                   const(bn.bias.detach().float(), "beta"),
                                   const(bn.running_mean.float(), "mean"),
                                   const(bn.running_var.float(), "var")], [y],
            epsilon=float(bn.eps)))
        out = y
    return out


def _simple(mod: nn.Module, x: str, name: Any, nodes: list[Any], helper: Any) -> str:
    if isinstance(mod, nn.Dropout | nn.Identity):
        return x
    out = name(type(mod).__name__.lower())
    if isinstance(mod, nn.ReLU):
        nodes.append(helper.make_node("Relu", [x], [out]))
    elif isinstance(mod, nn.Flatten):
        nodes.append(helper.make_node("Flatten", [x], [out], axis=1))
    else:  # MaxPool1d / MaxPool2d
        nd = 1 if isinstance(mod, nn.MaxPool1d) else 2
        k, s, p, d = (list(v) if isinstance(v, tuple | list) else [v] * nd
                      for v in (mod.kernel_size, mod.stride, mod.padding, mod.dilation))
        nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=k, strides=s,
                                      pads=p + p, dilations=d, ceil_mode=int(mod.ceil_mode)))
    return out
