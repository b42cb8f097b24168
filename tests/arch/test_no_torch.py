"""arch must never import torch (a search worker must start fast)."""

from __future__ import annotations

import subprocess
import sys


def test_arch_does_not_import_torch() -> None:
    code = ("import sys, arch, arch.io, arch.presets, arch.energy, arch.area, arch.tech\n"
            "arch.presets.sysml19(2).area\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
