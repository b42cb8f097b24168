"""Every quant module imports on its own, first thing in a process (no import cycle that only
a particular import order hides), and a bare QuantConv1d goes through the integer projections
as a bare QuantConv2d does."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import warnings

import torch
from torch import nn

import quant

_SCRIPT = """
import importlib, sys
names = sys.argv[1:]
bad = []
for name in names:
    for loaded in [m for m in sys.modules if m == "quant" or m.startswith("quant.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        bad.append(f"{name}: {type(e).__name__}: {e}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def test_every_quant_module_imports_first() -> None:
    names = sorted(m.name for m in pkgutil.walk_packages(quant.__path__, "quant."))
    assert "quant.projection" in names
    done = subprocess.run([sys.executable, "-c", _SCRIPT, *names], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


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
