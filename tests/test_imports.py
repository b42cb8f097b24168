"""Every module of every package imports on its own, first thing in a process.

An import cycle can hide behind the order in which a package's ``__init__`` or a test happens to
import things (``import quant.projection`` as a process's first quant import once failed on
one). Each package is checked in one subprocess that drops the package from ``sys.modules``
before importing each of its modules, so every module is the first one imported."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

_SCRIPT = """
import importlib, sys
package, names = sys.argv[1], sys.argv[2:]
bad = []
for name in names:
    for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        bad.append(f"{name}: {type(e).__name__}: {e}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


@pytest.mark.parametrize("package", ["quant", "workloads", "arch", "dse", "studies"])
def test_every_module_imports_first(package: str) -> None:
    root = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.walk_packages(root.__path__, f"{package}."))
    assert len(names) > 5
    done = subprocess.run([sys.executable, "-c", _SCRIPT, package, *names],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
