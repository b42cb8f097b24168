"""A bare QuantConv1d goes through the integer projections as a bare QuantConv2d does (the
first-import check of every module is tests/test_imports.py)."""

from __future__ import annotations

import importlib
import warnings

import torch
from torch import nn

import quant


def test_bare_quantconv1d_projects_to_integer() -> None:
    projection = importlib.import_module("quant.projection")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quant.quantize(nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 4, 3)),
                           "llsqf", 4, 4)
    x = torch.randn(3, 2, 9)
    quant.calibrate(q, x)
    layer = q[0]
    assert isinstance(layer, quant.QuantConv1d)
    assert projection.quantize_biases_(layer, x) == 0  # no bias clipped
