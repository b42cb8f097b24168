"""What the command lines accept as a model and as a design, resolved into typed values.

``--arch`` (`load_design`): a preset name of `arch.presets` (built at ``--mac-bits`` /
``--dram-gbps``), or a ``.toml`` / ``.yaml`` / ``.yml`` accelerator file (`arch.io`). A file that
cannot be read, is not UTF-8 text, does not parse or names a bad field gives one ValueError naming
the flag, the file and the field.

``--model`` (`load_workload`): a zoo name (`workloads.zoo`), an ``.onnx`` file
(`workloads.from_onnx`), a SCALE-Sim topology ``.csv`` (`workloads.from_scalesim`), a saved workload
``.json`` (`workloads.Workload.save`), or ``package.module:factory`` / ``path/file.py:factory`` - a
callable returning an ``nn.Module`` (or a ready `Workload`). A recipe (`quant.quantize`) and bits
apply to the ``nn.Module`` forms. torch and quant are imported only when a module is traced.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arch import Accelerator
    from workloads.graph import Workload

__all__ = ["DESIGN_SUFFIXES", "ModelSpec", "check_model", "cli_advice", "design_label",
           "finite_or_inf", "load_design", "load_workload"]

log = logging.getLogger(__name__)

DESIGN_SUFFIXES = (".toml", ".yaml", ".yml")
MAX_BATCH = 1 << 20
"""Largest ``--batch``: a million images per inference batch is beyond any accelerator's memory
(the bound of ``dse.sweep``, ``dse.search`` and ``workloads.show``)."""
MAX_WIDTH = 64
"""Largest ``--width`` (channel multiplier) of a zoo model, as ``dse.sweep`` bounds it."""
_MODEL_FORMS = ("a zoo name ({zoo}), FILE.onnx, a SCALE-Sim topology FILE.csv, a saved workload "
                "FILE.json, or package.module:factory / path/file.py:factory")


# -- designs ---------------------------------------------------------------------------------------
def load_design(spec: str, *, mac_bits: tuple[int, int] | None = None,
                dram_gbps: float | None = None, field: str = "--arch") -> Accelerator:
    """The `Accelerator` ``spec`` names: a preset (at ``mac_bits`` and ``dram_gbps`` when given,
    else the preset's defaults) or a design file (``dram_gbps`` replaces the file's value;
    ``mac_bits`` is a property of a file's design and is not changed)."""
    from arch import io, presets

    path = Path(spec)
    if path.suffix.lower() in DESIGN_SUFFIXES or path.is_file():
        acc = _read_design(path, field)
        if dram_gbps is not None:
            acc = dataclasses.replace(acc, dram_gbps=dram_gbps)
        return acc if acc.name else dataclasses.replace(acc, name=path.stem)
    if spec not in presets.names():
        raise ValueError(f"{field}={spec!r} is not allowed; expected a preset "
                         f"({', '.join(presets.names())}) or a design file "
                         f"({', '.join('FILE' + s for s in io.SUFFIXES)})")
    kw: dict[str, Any] = {}
    if mac_bits is not None:
        kw["mac_bits"] = mac_bits
    if dram_gbps is not None:
        kw["dram_gbps"] = dram_gbps
    try:
        return presets.get(spec, **kw)
    except ValueError as e:
        raise ValueError(f"{field}={spec!r}: {e}") from None


def _read_design(path: Path, field: str) -> Accelerator:
    from arch import io

    where = f"{field}={str(path)!r}"
    if path.suffix.lower() not in DESIGN_SUFFIXES:
        raise ValueError(f"{where} is not allowed; a design file ends in "
                         f"{', '.join(DESIGN_SUFFIXES)}")
    try:
        return io.load(path)
    except (OSError, UnicodeDecodeError) as e:  # an arch.io that does not name the file
        raise ValueError(f"{where} cannot be read as a {path.suffix[1:].upper()} accelerator "
                         f"description ({e})") from None
    except ValueError as e:  # arch.io names the file and the field ("PATH: cores=0 is ...")
        text = str(e)
        if text.startswith(f"{path}: "):
            text = text[len(f"{path}: "):]
        raise ValueError(f"{where}: {text}") from None


def design_label(acc: Accelerator) -> str:
    """A short human name of a design: its name, else cores x array @ bits."""
    if acc.name:
        return acc.name
    w, a = acc.mac_bits
    return f"{acc.cores}x{acc.rows}x{acc.cols} W{w}A{a}"


# -- models ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to turn ``--model`` into a workload: the model and its quantization."""

    model: str
    recipe: str | None = None
    w_bits: int | None = None
    a_bits: int | None = None
    first_last_bits: int | None = None
    width: int = 1
    batch: int | None = None
    """Images per batch; None: the model's own (an ONNX file's batch), else 1."""
    input_shape: tuple[int, ...] | None = None
    ignore_unsupported: bool | tuple[str, ...] = False
    """Ops whose arithmetic qdse does not model that are dropped instead of refused (True:
    all of them); the workload lists them (`Workload.ignored`)."""

    def __post_init__(self) -> None:
        problems = []
        for f in ("w_bits", "a_bits", "first_last_bits"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or not 1 <= v <= 32):
                problems.append(f"--{f.replace('_', '-')}={v!r} is not allowed; expected an "
                                "integer in 1..32")
        for f, most in (("width", MAX_WIDTH), ("batch", MAX_BATCH)):
            v = getattr(self, f)
            if f == "batch" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most:
                problems.append(f"--{f}={v!r} is not allowed; expected an integer in 1..{most}")
        if self.input_shape is not None and (not self.input_shape or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 1
                for d in self.input_shape)):
            problems.append(f"--input-shape={self.input_shape!r} is not allowed; expected "
                            "positive integers such as 3,224,224")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def quantized(self) -> bool:
        return any(v is not None for v in (self.recipe, self.w_bits, self.a_bits,
                                           self.first_last_bits))


def _forms() -> str:
    from workloads import zoo

    return _MODEL_FORMS.format(zoo=", ".join(zoo.names()))


def check_model(spec: ModelSpec) -> None:
    """Every check of ``spec`` that needs no tracing: the model's form, the recipe's name."""
    kind = _kind(spec.model)
    if spec.recipe is not None:
        import quant

        if spec.recipe not in quant.recipes():
            raise ValueError(f"--recipe={spec.recipe!r} is not allowed; expected one of "
                             f"{', '.join(quant.recipes())}")
    if spec.quantized and kind not in ("zoo", "factory"):
        raise ValueError(f"--recipe/--w-bits/--a-bits/--first-last-bits apply to nn.Module "
                         f"models (a zoo name or module:factory); --model={spec.model!r} carries "
                         "its own bits")
    if spec.width != 1 and kind != "zoo":
        raise ValueError(f"--width={spec.width} applies to zoo models only (got "
                         f"--model={spec.model!r})")


def _kind(model: str) -> str:
    from workloads import zoo

    suffix = Path(model).suffix.lower()
    if model in zoo.names():
        return "zoo"
    if suffix in (".onnx", ".csv", ".json"):
        if not Path(model).is_file():
            raise ValueError(f"--model={model!r} is not a readable file; expected {_forms()}")
        return suffix[1:]
    if ":" in model and not model.startswith(":") and not model.endswith(":"):
        return "factory"
    raise ValueError(f"--model={model!r} is not allowed; expected {_forms()}")


def load_workload(spec: ModelSpec) -> Workload:
    """The `Workload` of ``spec`` (see the module docstring for the forms)."""
    check_model(spec)
    kind = _kind(spec.model)
    if kind in ("onnx", "csv"):
        return _from_file(spec, kind)
    if kind == "json":
        from workloads.graph import Workload

        try:
            return Workload.load(spec.model)
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"--model={spec.model!r} is not a saved workload ({e})") from None
    if kind == "zoo":
        from workloads import zoo

        zoo_shape = spec.input_shape or zoo.input_shape(spec.model)
        name = spec.model + (f"-x{spec.width}" if spec.width != 1 else "")
        return _trace(lambda: zoo.get(spec.model, width=spec.width), spec, zoo_shape, name)
    factory, default_shape = _factory(spec.model)
    shape = spec.input_shape or default_shape
    return _trace(factory, spec, shape, spec.model.rsplit(":", 1)[1])


def _from_file(spec: ModelSpec, kind: str) -> Workload:
    import workloads

    reader = getattr(workloads, f"from_{'onnx' if kind == 'onnx' else 'scalesim'}", None)
    if reader is None:
        raise ValueError(f"--model={spec.model!r}: this qdse has no "
                         f"workloads.from_{'onnx' if kind == 'onnx' else 'scalesim'} reader; "
                         f"expected a zoo name or module:factory")
    # ONNX: the file's own batch unless --batch; SCALE-Sim topologies are per image (batch 1,
    # the simulator re-scales to --batch)
    kw: dict[str, Any] = ({"batch": spec.batch, "ignore_unsupported": spec.ignore_unsupported}
                          if kind == "onnx" else {})
    try:
        wl = reader(spec.model, **kw)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--model={spec.model!r} cannot be read ({e})") from None
    except ValueError as e:
        raise ValueError(f"--model={spec.model!r}: {cli_advice(str(e))}") from None
    return wl  # type: ignore[no-any-return]


def _factory(text: str) -> tuple[Callable[[], Any], tuple[int, ...] | None]:
    """The callable ``module:factory`` names and the input shape it declares (an ``input_shape``
    attribute on the factory or its module), importing a ``.py`` path from its file."""
    where, _, attr = text.rpartition(":")
    allowed = "expected package.module:factory or path/file.py:factory naming a callable that " \
              "returns an nn.Module"
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ValueError(f"--model={text!r}: no file {where!r}; {allowed}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ValueError(f"--model={text!r}: {where!r} is not a Python file; {allowed}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.append(str(Path.cwd()))  # console scripts leave the cwd off the path
            module = importlib.import_module(where)
    except ImportError as e:
        raise ValueError(f"--model={text!r}: module {where!r} cannot be imported ({e}); "
                         f"{allowed}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        public = sorted(n for n, v in vars(module).items()
                        if callable(v) and not n.startswith("_") and not isinstance(v, type(sys))
                        and getattr(v, "__module__", None) == module.__name__)
        raise ValueError(f"--model={text!r}: module {where!r} has no callable {attr!r}; its "
                         f"callables: {', '.join(public) or '(none)'}")
    shape = getattr(fn, "input_shape", None) or getattr(module, "INPUT_SHAPE", None)
    return fn, (tuple(int(d) for d in shape) if shape is not None else None)


def _trace(build: Callable[[], Any], spec: ModelSpec, shape: Sequence[int] | None,
           name: str) -> Workload:
    """Build, quantize and extract the model: on torch's meta device first (shapes and bits are
    all a workload needs), retried on the CPU if an op needs real values."""
    if shape is None:
        raise ValueError(f"--input-shape is missing for --model={spec.model!r}; expected C,H,W "
                         "(or an input_shape attribute on the factory / INPUT_SHAPE in its "
                         "module)")
    try:
        try:
            return _extract(build, spec, tuple(shape), name, "meta")
        except (RuntimeError, NotImplementedError) as err:
            log.info("tracing %s on the meta device failed (%s); retrying on the CPU", name, err)
            return _extract(build, spec, tuple(shape), name, "cpu")
    except ValueError as err:  # the tracer's message names no flag: say which input it was
        if str(err).startswith("--"):
            raise
        given = ("" if spec.input_shape is None else
                 f" at --input-shape={','.join(map(str, spec.input_shape))}")
        raise ValueError(f"--model={spec.model!r}{given}: {cli_advice(str(err))}") from None


def _extract(build: Callable[[], Any], spec: ModelSpec, shape: tuple[int, ...], name: str,
             device: str) -> Workload:
    import torch
    import torch.nn as nn

    from workloads import extract
    from workloads.graph import Workload

    with torch.no_grad(), torch.device(device):
        net = build()
        if isinstance(net, Workload):
            return net
        if not isinstance(net, nn.Module):
            raise ValueError(f"--model={spec.model!r} returned {type(net).__name__}; expected an "
                             "nn.Module or a workloads.Workload")
        w, a = spec.w_bits, spec.a_bits
        plain_bits = spec.recipe in (None, "fp32") and (w is not None or a is not None)
        if spec.recipe is not None and spec.recipe != "fp32":
            import quant

            net = quant.quantize(net, spec.recipe, w_bits=w or 2, a_bits=a or 2)
            name += f"-{spec.recipe}-w{w or 2}a{a or 2}"
        elif plain_bits:
            name += f"-w{w or a}a{a or w}"
        if spec.first_last_bits is not None:
            name += f"-fl{spec.first_last_bits}"
        kw: dict[str, Any] = dict(input_shape=shape, batch=spec.batch or 1, default_bits=16,
                                  name=name, ignore_unsupported=spec.ignore_unsupported)
        wl = extract(net, **kw)
        # the flags' bits go on the workload's own compute layers (every conv, linear and matmul
        # it models, whatever module or function made it), so they are chosen from a first
        # extraction and applied by a second
        overrides: dict[str, tuple[int, int]] = {}
        if plain_bits:  # bits without a recipe: every compute layer the model does not quantize
            pair = (w or a or 16, a or w or 16)
            overrides = {la.name: pair for la in wl.compute_layers()
                         if not la.meta.get("quantized")}
        if spec.first_last_bits is not None:  # the hardware runs them at these bits
            fl = spec.first_last_bits
            firsts, lasts = wl.first_last_layers()
            overrides.update({n: (fl, fl) for n in (*firsts, *lasts)})
        return extract(net, overrides=overrides, **kw) if overrides else wl


_API_WORDS = ("ignore_unsupported", "concrete_args", "leaf_modules")


def cli_advice(text: str) -> str:
    """A `workloads` error with its advice in this CLI's terms: the fix it names as keyword
    arguments of ``extract()`` / ``from_onnx()``, which the command lines do not take, becomes
    ``--ignore-unsupported`` or what a command-line user can do instead (a ``module:factory``
    wrapper, or a workload built in Python and passed as ``--model FILE.json``)."""
    text = text.replace("Check that input_shape is", "Check that --input-shape is")
    fix = re.search(r"\bFix(?:es)?: ", text)
    if fix is None or not any(w in text[fix.start():] for w in _API_WORDS):
        return text
    head, tail = text[:fix.start()], text[fix.start():]
    saved = ("build the workload in Python (workloads.extract takes concrete_args and "
             "leaf_modules; Workload.from_layers builds one by hand), save it with "
             "Workload.save and pass --model FILE.json")
    if "ignore_unsupported" in tail:
        listed = re.search(r"ignore_unsupported=(\[[^\]]*\])", tail)
        try:
            names = [str(n) for n in ast.literal_eval(listed.group(1))] if listed else []
        except (ValueError, SyntaxError):
            names = []
        some = f" (all of them) or --ignore-unsupported={','.join(names)}" if names else ""
        return (f"{head}Fix: pass --ignore-unsupported{some} to keep them as memory-only "
                f"'other' ops, listed under 'ignored' in the summary, or {saved}")
    if tail.startswith("Fixes:"):  # a model torch.fx cannot trace
        return (f"{head}Fixes: (1) pass --model a module:factory returning a wrapper module whose "
                "forward fixes the Python value the control flow depends on; (2) rewrite the "
                f"data-dependent branch with tensor ops (torch.where); (3) {saved}")
    # a forward with several inputs
    head = head.replace("extract() feeds", "the command line feeds")
    return (f"{head}Fix: pass --model a module:factory returning a wrapper module whose forward "
            f"takes one tensor and passes fixed values for the others, or {saved}")


def finite_or_inf(text: str, field: str) -> float:
    """A GB/s value > 0 or ``inf``."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if math.isnan(v) or v <= 0:
        raise ValueError(f"{field}={text!r} is not allowed; expected GB/s > 0 or inf")
    return v
