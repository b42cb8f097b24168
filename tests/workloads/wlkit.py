"""Helpers for the workloads tests: fake quantized modules (the bits protocol), a MAC oracle
from forward hooks and zoo models on the meta device.

Test modules import these as ``from wlkit import ...``: a name unique across the test tree
(several folders have a ``conftest.py``, so ``from conftest import`` picked whichever conftest
was imported first when folders ran together). This module holds no tests.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workloads import Workload, extract, zoo


class FakeQuantConv2d(nn.Conv2d):
    """Stands in for quant.modules.QuantConv2d: bits protocol on an nn.Conv2d subclass.

    Its forward does things fx cannot trace (a Python branch on a tensor value), so the test also
    proves the tracer keeps protocol modules as leaves.
    """

    def __init__(self, *args: object, weight_bits: int | None = 2, act_bits: int | None = 2,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.weight_bits = weight_bits
        self.act_bits = act_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().max() > 1e9:        # data-dependent: untraceable unless a leaf
            x = x.clamp(-1e9, 1e9)
        return super().forward(x)


class FakeQuantLinear(nn.Linear):
    def __init__(self, *args: object, weight_bits: int | None = 4, act_bits: int | None = 4,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.weight_bits = weight_bits
        self.act_bits = act_bits


class FakeQuantAct(nn.Module):
    """Stands in for quant.modules.QuantAct (PACT): weightless, quantizes its OUTPUT."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.act_bits = bits
        self.alpha = nn.Parameter(torch.tensor(6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(self.alpha) < 0:      # data-dependent: must be a leaf
            raise RuntimeError
        scale = (2**self.act_bits - 1) / self.alpha
        return torch.round(x.clamp(0, float(self.alpha)) * scale) / scale


def hook_macs(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1) -> int:
    """Independent MAC oracle: forward hooks on every Conv/Linear module.

    Conv: out_elems * C_in/groups * R*S; Linear: out_elems * in_features.
    """
    total = 0

    def hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * int(
                torch.tensor(m.kernel_size).prod())
        else:
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)]
    was = model.training
    model.eval()
    param = next(model.parameters())
    with torch.no_grad():
        model(torch.zeros(batch, *input_shape, device=param.device))
    model.train(was)
    for h in handles:
        h.remove()
    return total


_CACHE: dict[str, tuple[nn.Module, Workload]] = {}


def meta_model(name: str, **kw: object) -> nn.Module:
    """Zoo model with parameters on the meta device: same structure, no init cost, no memory."""
    with torch.device("meta"):
        return zoo.get(name, **kw)  # type: ignore[arg-type]


def zoo_workload(name: str) -> tuple[nn.Module, Workload]:
    """Zoo model (meta device) at its default input, extracted once per test session."""
    if name not in _CACHE:
        model = meta_model(name)
        _CACHE[name] = (model, extract(model, zoo.input_shape(name), name=name))
    return _CACHE[name]


def flop_counter_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Independent MAC oracle: the GEMM/conv kernels one forward pass runs, as
    ``torch.utils.flop_counter`` counts them (2 flops per MAC). Train mode and oneDNN off, so
    attention and LSTM run the kernels the counter sees (no dropout is configured: same maths)."""
    was = model.training
    model.train()
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), \
            FlopCounterMode(display=False) as counter:
        model(*inputs)
    model.train(was)
    return int(counter.get_total_flops()) // 2
