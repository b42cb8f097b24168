"""Workload graphs from PyTorch models (torch.fx -> networkx), and the model zoo.

``workloads.extract(model, input_shape, batch=1, default_bits=16, overrides=None)`` turns any
nn.Module (quantized or not) into a `Workload`; ``workloads.zoo`` builds the papers' networks.
``from_onnx`` reads ONNX / QONNX / QCDQ files, ``from_scalesim`` SCALE-Sim topologies
(``Workload.to_scalesim`` writes them).

``import workloads`` does not import torch: the graph containers (`Workload`, `Layer`) and
`workloads.atomic` need none, and the simulator, the search workers and the study runner load
them without it. The names that need torch (`extract`, `zoo`, `protocol`, ...) are imported on
first use (PEP 562 ``__getattr__``), then are ordinary attributes of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workloads.graph import COMPUTE_OPS, Layer, Workload, bytes_for

if TYPE_CHECKING:  # the lazy names, for type checkers and editors
    from workloads import protocol, zoo
    from workloads.extraction import extract
    from workloads.onnx_import import from_onnx
    from workloads.protocol import QuantizedModule, is_quantized
    from workloads.scalesim_io import from_scalesim
    from workloads.trace import ExtractError

__all__ = [
    "COMPUTE_OPS",
    "ExtractError",
    "Layer",
    "QuantizedModule",
    "Workload",
    "bytes_for",
    "extract",
    "from_onnx",
    "from_scalesim",
    "is_quantized",
    "protocol",
    "zoo",
]

_LAZY = {  # name -> the module it comes from (the name itself, for a submodule)
    "ExtractError": "workloads.trace",
    "QuantizedModule": "workloads.protocol",
    "extract": "workloads.extraction",
    "from_onnx": "workloads.onnx_import",
    "from_scalesim": "workloads.scalesim_io",
    "is_quantized": "workloads.protocol",
    "protocol": "workloads.protocol",
    "zoo": "workloads.zoo",
}


def __getattr__(name: str) -> Any:
    """Import a torch-dependent public name on first use (PEP 562) and keep it."""
    source = _LAZY.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(source)
    value = module if source == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
