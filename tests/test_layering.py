"""Data flows one way: model -> quantized model -> workload graph -> simulator -> studies/search.

These tests read every module's imports (AST, nothing executed) and check each package only reaches
the packages before it in the chain, and that the hardware side starts without torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("quant", "workloads", "arch", "dse", "studies")

# Which first-party packages each package may import. The zoo (model definitions) is the head of
# the chain, so the quantization trainer may take its models from `workloads.zoo`; the atomic
# file write (`workloads.atomic`, standard library only) is shared rather than copied.
ALLOWED: dict[str, set[str]] = {
    "arch": set(),
    "workloads": set(),
    "quant": {"workloads.zoo", "workloads.atomic"},
    "dse": {"arch", "workloads"},
    "studies": {"arch", "workloads", "quant", "dse"},
}
# Entry points inside dse/: the CLIs and what they share (a package, such as dse.search, with all
# of its modules). They may build models (quant, workloads) but never import `studies`, which sits
# downstream of dse: `python -m dse.study NAME` finds a study by name (dse.study.registry).
DSE_FRONTENDS = {"dse.cli", "dse.inputs", "dse.simulate", "dse.compare", "dse.study", "dse.sweep",
                 "dse.search"}
NEVER_FROM_DSE = {"studies"}
# The simulator proper (every module of dse/sim/): no torch, no quantization, no studies.
SIMULATOR = tuple(sorted(f"dse.sim.{p.stem}" for p in (ROOT / "dse" / "sim").glob("*.py")
                         if p.stem != "__init__"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _first_party_modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out.append((_module_name(path), path))
    return out


def _allowed(importer: str, imported: str) -> bool:
    pkg = importer.split(".")[0]
    target = imported.split(".")[0]
    if target not in PACKAGES or target == pkg:
        return True
    if pkg == "dse" and target in NEVER_FROM_DSE:
        return False
    if pkg == "dse" and any(importer == f or importer.startswith(f + ".") for f in DSE_FRONTENDS):
        return True
    return any(imported == a or imported.startswith(a + ".") for a in ALLOWED[pkg])


@pytest.mark.parametrize(("module", "path"), _first_party_modules(), ids=lambda v: str(v))
def test_imports_follow_the_chain(module: str, path: Path) -> None:
    bad = sorted(i for i in _imports(path) if not _allowed(module, i))
    assert not bad, f"{module} imports {bad}, which are downstream of or beside it"


@pytest.mark.parametrize("module", SIMULATOR)
def test_simulator_modules_never_import_torch(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    assert module.startswith("dse.sim."), module
    if not path.exists():
        pytest.fail(f"{module} is missing")
    imported = _imports(path)
    assert not any(i.split(".")[0] in {"torch", "quant", "studies"} for i in imported), imported


def test_dse_never_imports_studies() -> None:
    """Not even lazily inside a function: every module of dse/ is read, frontends included."""
    offenders = {m: sorted(i for i in _imports(p) if i.split(".")[0] == "studies")
                 for m, p in _first_party_modules() if m.split(".")[0] == "dse"}
    assert not {m: v for m, v in offenders.items() if v}


def test_the_rule_would_catch_a_study_import() -> None:
    assert not _allowed("dse.study.sweep", "studies.bandwidth_area_sweep")
    assert not _allowed("dse.simulate", "studies")
    assert _allowed("dse.simulate", "quant")
    assert not _allowed("dse.sim.simulate", "quant")


def test_hardware_side_starts_without_torch() -> None:
    code = ("import sys, arch, arch.presets, dse, dse.sim.simulate, dse.simulate, dse.compare; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


_NO_TORCH = textwrap.dedent("""
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ImportError(f"no torch here ({name})")
            return None

    sys.meta_path.insert(0, NoTorch())
""")
# The public names of `workloads` that need torch, and where each is defined.
WORKLOADS_LAZY = {"ExtractError": "workloads.trace", "QuantizedModule": "workloads.protocol",
                  "extract": "workloads.extraction", "from_onnx": "workloads.onnx_import",
                  "from_scalesim": "workloads.scalesim_io", "is_quantized": "workloads.protocol",
                  "protocol": None, "zoo": None}  # None: a submodule


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_workloads_and_its_atomic_writes_load_where_torch_cannot() -> None:
    """`import workloads` needs no torch (dse imports `workloads.atomic`, and dse.search must
    start without torch): with every torch import refused, the package, its torch-free modules
    and dse's users of them load, and a torch-dependent name fails only when it is touched."""
    out = _run(_NO_TORCH + textwrap.dedent(f"""
        import workloads, workloads.atomic, workloads.graph, workloads.scalesim_io
        import dse.search, dse.study.atomic
        assert workloads.Workload is workloads.graph.Workload
        for name in {sorted(set(WORKLOADS_LAZY) - {"from_scalesim"})!r}:
            try:
                getattr(workloads, name)
            except ImportError as e:
                assert "no torch here" in str(e), e
            else:
                raise AssertionError(name + " resolved without torch")
        workloads.from_scalesim  # the module needs torch only to read (its bits check)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "torch"))
    """))
    assert out.strip() == "[]", out


def test_the_lazy_names_of_workloads_are_the_real_ones() -> None:
    """With torch there, each lazy name resolves on first use to the object its module defines,
    `from workloads import ...` works, and ``dir`` lists the public names."""
    out = _run(textwrap.dedent(f"""
        import importlib, sys
        import workloads
        assert "torch" not in sys.modules
        from workloads import extract, zoo
        assert "torch" in sys.modules
        for name, source in {WORKLOADS_LAZY!r}.items():
            value = getattr(workloads, name)
            if source is None:
                assert value is importlib.import_module("workloads." + name), name
            else:
                assert value is getattr(importlib.import_module(source), name), name
        assert extract is workloads.extraction.extract and zoo.names()
        assert set(workloads.__all__) <= set(dir(workloads))
        try:
            workloads.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        print("ok")
    """))
    assert out.strip() == "ok", out
    import workloads

    assert set(WORKLOADS_LAZY) < set(workloads.__all__)  # the rest is torch-free


def test_no_import_cycle_between_area_and_spec() -> None:
    """arch.spec builds the Accelerator on arch.area's model; area must not reach back."""
    area = _imports(ROOT / "arch" / "area.py")
    assert not any(i == "arch.spec" or i.startswith("arch.spec.") for i in area), area
