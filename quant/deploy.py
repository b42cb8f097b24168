"""A deployable integer model: integer tensors end to end, constants computed once, saved to disk.

``deploy(model)`` compiles a fake-quantized CHAIN model (each layer reads the previous one's
output: Conv1d/Conv2d/Linear with a folded BN, QuantAct, ReLU, MaxPool1d/2d, Flatten, Dropout -
digits_cnn, VGG-style nets, 1-D CNNs for audio or ECG) through
:func:`quant.integer.to_integer`'s plans into a :class:`DeployedModel`, a list of integer
operations whose constants are fixed at compile time:

* weights: the quantizer's integer codes stored as ``int8`` (``int16`` above 8 bits);
* biases: ``int32``, clamped to ``bias_bits`` at the accumulator scale (LLSQ Eq. 6);
* MACs: ``int64`` products summed exactly, then SATURATED to ``acc_bits`` (16 or 32: the
  ``accumulate="final"`` mode of :func:`~quant.integer.to_integer`; the per-MAC saturation of
  ``"sequential"`` is a simulation feature and stays there);
* requantization: ``q = clamp((acc * m + 2^(s-1)) >> s, qmin, qmax)`` with the per-channel
  integer multiplier ``m`` (``scale_bits`` bits) and shift ``s`` precomputed once (Eq. 6).

The only float operations are the first quantizer's rounding of the real input and the final
dequantization (``scale * q``). :meth:`DeployedModel.save` / :func:`load` write and read it
with ``torch.save`` / ``torch.load(weights_only=True)`` (integer tensors and plain values only).
The outputs equal ``to_integer(model, accumulate="final")`` exactly (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quant.grids import Grid, _apply_multiplier, quantize_multiplier
from quant.integer import IntegerModel, to_integer
from quant.integer_ops import _conv_pads
from quant.modules import QuantAct, QuantConv1d, QuantConv2d, QuantLinear

__all__ = ["FORMAT", "DeployedModel", "deploy", "load"]

FORMAT = 1


def _int_storage(codes: Tensor) -> Tensor:
    lo, hi = int(codes.min()), int(codes.max())
    for dt in (torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return codes.to(dt)
    raise ValueError(f"weight codes in [{lo}, {hi}] do not fit int32")


class DeployedModel(nn.Module):
    """Integer-only inference from a list of operations (see the module docstring).

    ``forward(x)`` takes the real input (float) and returns the dequantized output (float32).
    ``ops`` is the program: dicts with an ``"op"`` name and integer tensors/plain values."""

    def __init__(self, ops: list[dict[str, Any]], acc_bits: int) -> None:
        super().__init__()
        self.ops = ops
        self.acc_bits = int(acc_bits)
        self.dtypes_seen: list[torch.dtype] = []  # dtype after every op of the last forward

    def _sat(self, acc: Tensor) -> Tensor:
        lo, hi = -(2 ** (self.acc_bits - 1)), 2 ** (self.acc_bits - 1) - 1
        return acc.clamp(lo, hi)

    def _mac(self, op: dict[str, Any], x: Tensor) -> Tensor:
        w = op["weight"].long()
        if op["op"] == "linear":
            acc = x.long() @ w.t() + op["bias"].long()
        elif op["op"] == "conv1d":
            cols = F.pad(x.long(), tuple(op["padding"])).unfold(2, w.shape[2], op["stride"])
            b, _, lo = cols.shape[:3]  # (B, C, Lo, k)
            cols = cols.permute(0, 2, 1, 3).reshape(b * lo, -1)
            acc = cols @ w.reshape(w.shape[0], -1).t() + op["bias"].long()
            acc = acc.reshape(b, lo, -1).permute(0, 2, 1)
        else:
            ph, pw = op["padding"]
            sh, sw = op["stride"]
            kh, kw = w.shape[2], w.shape[3]
            xp = F.pad(x.long(), (pw, pw, ph, ph))
            cols = xp.unfold(2, kh, sh).unfold(3, kw, sw)  # (B, C, Ho, Wo, kh, kw)
            b, _, ho, wo = cols.shape[:4]
            cols = cols.permute(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, -1)
            acc = cols @ w.reshape(w.shape[0], -1).t() + op["bias"].long()
            acc = acc.reshape(b, ho, wo, -1).permute(0, 3, 1, 2)
        acc = self._sat(acc)  # the accumulator register saturates
        sign = op["sign"].long().view(1, -1, *[1] * (acc.dim() - 2))
        return self._sat(acc * sign).to(torch.int32 if self.acc_bits <= 32 else torch.int64)

    @staticmethod
    def _chan(t: Tensor, ndim: int) -> Tensor:
        return t.view(1, -1, *[1] * (ndim - 2)) if t.numel() > 1 else t.reshape(())

    def forward(self, x: Tensor) -> Tensor:
        self.dtypes_seen = []
        for op in self.ops:
            kind = op["op"]
            if kind == "quantize":  # the real input onto the first grid (float -> int)
                x = Grid(op["step"], op["qmin"], op["qmax"]).encode(x).to(torch.int32)
            elif kind in ("conv", "conv1d", "linear"):
                x = self._mac(op, x)
            elif kind == "requant":
                m, s = self._chan(op["mant"], x.dim()), self._chan(op["shift"], x.dim())
                x = _apply_multiplier(x.long(), m, s).clamp(op["qmin"], op["qmax"])
                x = x.to(torch.int32)
            elif kind == "relu":
                x = x.clamp_min(0)
            elif kind == "maxpool":
                x = F.max_pool2d(x, op["kernel"], op["stride"], op["padding"],
                                 op.get("dilation", 1), op.get("ceil_mode", False))
            elif kind == "maxpool1d":  # as a 1 x k max_pool2d: torch has no integer max_pool1d
                x = F.max_pool2d(x.unsqueeze(2), (1, op["kernel"]), (1, op["stride"]),
                                 (0, op["padding"]), (1, op["dilation"]),
                                 op["ceil_mode"]).squeeze(2)
            elif kind == "flatten":
                x = x.flatten(1)
            elif kind == "dequant":
                return (x.double() * self._chan(op["scale"], x.dim())).float()
            self.dtypes_seen.append(x.dtype)
        raise ValueError("program has no dequant op")  # pragma: no cover - compile adds one

    def save(self, path: str | Path) -> None:
        """Write the program (``torch.save``; readable with ``weights_only=True``)."""
        torch.save({"format": FORMAT, "acc_bits": self.acc_bits, "ops": self.ops}, path)


def load(path: str | Path) -> DeployedModel:
    """Read a :meth:`DeployedModel.save` file; ValueError if it is not one."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"path: {path} is not a deployed model file ({type(err).__name__})"
                         ) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"path: {path} is not a deployed model file of format {FORMAT}")
    return DeployedModel(blob["ops"], blob["acc_bits"])


def deploy(model: nn.Module, acc_bits: int = 32, bias_bits: int = 8, scale_bits: int = 8, *,
           pow2_scales: bool = False) -> DeployedModel:
    """Compile a fake-quantized chain model to a :class:`DeployedModel` (module docstring).

    Raises ValueError for a model that is not a chain of supported layers, for layers
    :func:`~quant.integer.to_integer` cannot export, and for ``acc_bits`` outside 2..62."""
    im = to_integer(model, acc_bits=acc_bits, bias_bits=bias_bits, scale_bits=scale_bits,
                    accumulate="final", pow2_scales=pow2_scales)
    return DeployedModel(_compile(im, bias_bits, scale_bits, pow2_scales), acc_bits)


def _compile(im: IntegerModel, bias_bits: int, scale_bits: int,
             pow2: bool) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    scale: Tensor | None = None  # float64 scale of the integers flowing now (None: real input)
    prev = None
    lim = 2 ** (bias_bits - 1)

    def to_grid(grid: Grid) -> None:
        nonlocal scale
        if scale is None:
            ops.append({"op": "quantize", "step": grid.step, "qmin": grid.qmin,
                        "qmax": grid.qmax})
        else:
            mant, shift = quantize_multiplier(scale / grid.step, scale_bits, pow2)
            ops.append({"op": "requant", "mant": mant, "shift": shift, "qmin": grid.qmin,
                        "qmax": grid.qmax})
        scale = torch.tensor(grid.step, dtype=torch.float64)

    for node in im._graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op != "call_module" or (prev is not None and node.args[0] is not prev):
            raise ValueError(f"deploy: node {node.name!r} ({node.op} {node.target}) is not a "
                             "layer of a chain; use quant.integer.to_integer for general graphs")
        prev = node
        mod = im._mods[node.target]
        if node.name in im._alias:  # a BN folded into the layer before it
            continue
        if isinstance(mod, QuantConv1d | QuantConv2d | QuantLinear):
            plan = im._plans[node.target]
            if plan.in_grid is not None:
                to_grid(plan.in_grid)
            if scale is None or scale.numel() != 1:
                raise ValueError(f"deploy: layer {node.target!r} needs a quantized input with "
                                 "one scale (a QuantAct or input quantizer before it)")
            s_acc = scale * plan.w_scale / 2**im.bias_frac_bits
            qb = torch.round(plan.bias_real / s_acc).clamp(-lim, lim - 1)  # Eq. 6
            sign = torch.where(s_acc < 0, -1, 1)
            op: dict[str, Any] = {"op": "linear", "weight": _int_storage(plan.codes),
                                  "bias": qb.to(torch.int32), "sign": sign.to(torch.int8)}
            if isinstance(mod, QuantConv1d | QuantConv2d):
                op |= _conv_op(node.target, mod)
            ops.append(op)
            scale = s_acc.abs()
        elif isinstance(mod, QuantAct):
            if mod.pre is not None:
                if not isinstance(mod.pre, nn.ReLU):
                    raise ValueError(f"deploy: {node.target!r} applies {type(mod.pre).__name__}")
                ops.append({"op": "relu"})
            to_grid(im._act_grids[node.target])
        elif isinstance(mod, nn.ReLU):
            ops.append({"op": "relu"})
        elif isinstance(mod, nn.MaxPool2d):
            ops.append({"op": "maxpool", "kernel": mod.kernel_size, "stride": mod.stride,
                        "padding": mod.padding, "dilation": mod.dilation,
                        "ceil_mode": mod.ceil_mode})
        elif isinstance(mod, nn.MaxPool1d):
            k, s, p, d = (_one(v) for v in (mod.kernel_size, mod.stride, mod.padding,
                                            mod.dilation))
            ops.append({"op": "maxpool1d", "kernel": k, "stride": s, "padding": p,
                        "dilation": d, "ceil_mode": mod.ceil_mode})
        elif isinstance(mod, nn.Flatten):
            if scale is not None and scale.numel() != 1:
                raise ValueError(f"deploy: {node.target!r} flattens per-channel scales")
            ops.append({"op": "flatten"})
        elif not isinstance(mod, nn.Dropout | nn.Identity):
            raise ValueError(f"deploy: module {node.target!r} ({type(mod).__name__}) is not "
                             "supported; supported: QuantConv1d, QuantConv2d, QuantLinear (+ BN), "
                             "QuantAct, ReLU, MaxPool1d, MaxPool2d, Flatten, Dropout")
    if scale is None:
        raise ValueError("deploy: the model has no quantized layer")
    ops.append({"op": "dequant", "scale": scale.flatten()})
    return ops


def _one(v: int | tuple[int, ...]) -> int:
    return int(v[0]) if isinstance(v, tuple) else int(v)


def _conv_op(target: str, mod: QuantConv1d | QuantConv2d) -> dict[str, Any]:
    """The stride/padding fields of a conv op: a Conv2d as ``"conv"`` with symmetric
    ``[ph, pw]`` (format 1), a Conv1d as ``"conv1d"`` with ``[before, after]`` (so
    ``padding="same"`` with an even kernel, which pads one more after, is deployed too)."""
    ones = (1,) * len(mod.kernel_size)
    if mod.groups != 1 or tuple(mod.dilation) != ones:
        raise ValueError(f"deploy: conv {target!r} has groups/dilation; only groups=1, "
                         "dilation=1 are deployed")
    pads = _conv_pads(mod)
    if isinstance(mod, QuantConv1d):
        return {"op": "conv1d", "stride": int(mod.stride[0]), "padding": list(pads[0])}
    if any(lo != hi for lo, hi in pads):
        raise ValueError(f"deploy: conv {target!r} pads {pads} (padding='same' with an even "
                         "kernel); only symmetric padding is deployed for Conv2d")
    return {"op": "conv", "stride": list(mod.stride), "padding": [lo for lo, _ in pads]}
