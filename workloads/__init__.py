"""Workload graphs from PyTorch models (torch.fx -> networkx), and the model zoo.

``workloads.extract(model, input_shape, batch=1, default_bits=16, overrides=None)`` turns any
nn.Module (quantized or not) into a `Workload`; ``workloads.zoo`` builds the papers' networks.
``from_onnx`` reads ONNX / QONNX / QCDQ files, ``from_scalesim`` SCALE-Sim topologies
(``Workload.to_scalesim`` writes them).
"""

from __future__ import annotations

from workloads import protocol, zoo
from workloads.extraction import extract
from workloads.graph import COMPUTE_OPS, Layer, Workload, bytes_for
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
