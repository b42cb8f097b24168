"""Workload graphs from PyTorch models (torch.fx -> networkx), and the model zoo."""

from __future__ import annotations

from workloads.graph import COMPUTE_OPS, Layer, Workload, bytes_for

__all__ = ["COMPUTE_OPS", "Layer", "Workload", "bytes_for"]
