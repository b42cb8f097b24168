"""torch.fx tracing and shape propagation: nn.Module -> fx.GraphModule with shapes in node.meta.

Two steps, each ending in a check (the ``graph.lint()`` habit):

1. `trace` runs ``torch.fx`` symbolic tracing with `QdseTracer`, which keeps as leaves every
   quantizer-protocol module (`workloads.protocol`), every Conv1d/Conv2d/Linear subclass and any
   module the caller names. A failure becomes an `ExtractError` naming the module being traced,
   the user source line and the fixes.
2. `propagate_shapes` runs the graph once on the meta device (a real pass on zeros if that
   fails), recording ``node.meta["tensor_meta"]`` like ShapeProp.
"""

from __future__ import annotations

import inspect
import linecache
import logging
import numbers
import operator
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import fx, nn
from torch.fx.node import map_aggregate

from workloads.protocol import is_quantized, op_kind
from workloads.transformer import TORCH_TRANSFORMERS, reference_forward, traceable_root

__all__ = ["ExtractError", "QdseTracer", "propagate_shapes", "trace"]

log = logging.getLogger(__name__)

_TORCH_DIR = os.path.dirname(torch.__file__)
_FIXES = ("Fixes: (1) pass concrete_args={'arg': value} to extract() to fix a Python value the "
          "control flow depends on; (2) pass leaf_modules=[<module name or class>] so the tracer "
          "does not look inside that module (its conv/linear cost is then not modelled unless it "
          "is itself a Conv/Linear subclass); (3) rewrite the data-dependent branch with tensor "
          "ops (torch.where), or build the Workload by hand with Workload.from_layers and set "
          "bits with overrides.")


class ExtractError(ValueError):
    """A model could not be turned into a workload graph; the message names module, op and fix."""


class QdseTracer(fx.Tracer):
    """fx tracer whose leaves are the units `workloads.lower` knows how to cost.

    Leaves: torch.nn built-ins (fx default) but torch's Transformer modules, any module speaking
    the bits protocol, any subclass of nn.Conv1d/nn.Conv2d/nn.Linear (lowered by its base class),
    and ``leaf_modules`` (qualified names or classes). A Transformer module is traced through its
    reference path (`workloads.transformer`: torch's fast-path checks cannot be traced) down to
    its attention, linear and norm leaves. ``qdse_stack`` tracks the modules being traced for
    error messages.
    """

    def __init__(self, leaf_modules: Iterable[str | type[nn.Module]] = ()) -> None:
        super().__init__()
        self._leaf_names = {m for m in leaf_modules if isinstance(m, str)}
        self._leaf_types = tuple(m for m in leaf_modules if isinstance(m, type))
        self.qdse_stack: list[str] = []
        self.user_leaves: set[str] = set()
        """Qualified names of the modules kept as leaves because ``leaf_modules`` named them."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_quantized(m) or isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
            return True
        if module_qualified_name in self._leaf_names or (
                self._leaf_types and isinstance(m, self._leaf_types)):
            self.user_leaves.add(module_qualified_name)
            return True
        if isinstance(m, TORCH_TRANSFORMERS):
            return False
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        name = self.path_of_module(m)
        self.qdse_stack.append(name)
        try:
            return super().call_module(m, reference_forward(m) or forward, args, kwargs)
        except Exception as e:
            if not hasattr(e, "_qdse_module"):
                e._qdse_module = (name, type(m).__name__)  # type: ignore[attr-defined]
            raise
        finally:
            self.qdse_stack.pop()


def _user_frame(exc: BaseException) -> str:
    """'file:line in func: `code`' of the innermost traceback frame outside torch, or ''."""
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(_TORCH_DIR) or frame.filename == __file__:
            continue
        code = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
        found = f"{frame.filename}:{frame.lineno} in {frame.name}: `{code}`"
    return found


def trace(model: nn.Module, concrete_args: dict[str, Any] | None = None,
          leaf_modules: Iterable[str | type[nn.Module]] = ()) -> fx.GraphModule:
    """Symbolically trace ``model``; raise `ExtractError` naming module, operation and fixes."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    tracer = QdseTracer(leaf_modules)
    root, defaults = traceable_root(model)
    concrete = {**_optional_defaults(root), **defaults, **(concrete_args or {})}
    try:
        graph = tracer.trace(root, concrete_args=concrete or None)
    except Exception as e:
        where = getattr(e, "_qdse_module", None)
        module = (f"module {where[0] or '<root>'!r} ({where[1]})" if where
                  else f"the root module ({type(model).__name__}.forward)")
        line = _user_frame(e)
        raise ExtractError(
            f"cannot trace {type(model).__name__} with torch.fx: in {module}"
            + (f", at {line}" if line else "")
            + f": {type(e).__name__}: {e}. {_transformer_hint(model, where) or _FIXES}") from e
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    gm.meta["qdse_user_leaves"] = frozenset(tracer.user_leaves)
    gm.graph.lint()
    return gm


_PLAIN_DEFAULT = (type(None), bool, int, float, str)


def _optional_defaults(root: nn.Module) -> dict[str, Any]:
    """The optional inputs of ``root.forward`` after the first, bound to their plain defaults.

    `extract` feeds one tensor and `propagate_shapes` runs every other input at its default, so
    the trace must see those defaults too: traced as Proxies, ``if mask is not None:`` would keep
    the masked branch (and shape propagation then fail on ``None``), and ``if flag:`` could not
    be traced at all.
    """
    params = list(inspect.signature(type(root).forward).parameters.values())[2:]  # self, x
    return {p.name: p.default for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is not p.empty and type(p.default) in _PLAIN_DEFAULT}


def _transformer_hint(model: nn.Module, where: tuple[str, str] | None) -> str:
    """Why a torch Transformer module failed to trace, when one did ('' otherwise): its forward
    is not torch's own (`workloads.transformer` traces only those), so torch's fast-path checks
    ran on Proxies."""
    mod = model if where is None else dict(model.named_modules()).get(where[0])
    if not isinstance(mod, TORCH_TRANSFORMERS) or reference_forward(mod) is not None:
        return ""
    return (f"{type(mod).__name__} overrides forward, and torch's {_torch_base(mod)}.forward "
            "it reaches checks tensor values for a fused fast path, which torch.fx cannot "
            "trace; qdse traces torch's Transformer modules through their reference path only "
            "when their forward is torch's own. Fix: keep torch's forward, or call the layers "
            "(self.layers; a layer's self_attn, linear1/linear2 and norms) from your forward "
            "instead of torch's.")


def _torch_base(mod: nn.Module) -> str:
    return next(t.__name__ for t in type(mod).__mro__ if t in TORCH_TRANSFORMERS)


def _first_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
            return name, m
    return None


def check_input_shape(gm: fx.GraphModule, model: nn.Module, input_shape: Sequence[int]) -> None:
    """Validate ``input_shape`` (C, H, W) against the layer that reads the input directly."""
    if isinstance(input_shape, str | bytes):
        raise ValueError(f"input_shape={input_shape!r} is invalid; expected a tuple of ints")
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if not shape or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1
                        for d in shape):
        raise ValueError(f"input_shape={input_shape!r} is invalid; expected a tuple of positive "
                         "ints per image without the batch, e.g. (3, 224, 224) for (C, H, W)")
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if not placeholders:
        return
    mods = dict(gm.named_modules())
    for user in placeholders[0].users:
        m = mods.get(str(user.target)) if user.op == "call_module" else None
        if isinstance(m, nn.Conv2d):
            if len(shape) != 3:
                raise ValueError(f"input_shape={shape!r} has {len(shape)} dims; layer "
                                 f"{user.target!r} (Conv2d) reads the input, so give (C, H, W)")
            if shape[0] != m.in_channels:
                raise ValueError(f"input_shape={shape!r}: C={shape[0]} but layer {user.target!r} "
                                 f"(Conv2d) expects {m.in_channels} input channels")
        elif isinstance(m, nn.Conv1d):
            if len(shape) != 2 or shape[0] != m.in_channels:
                raise ValueError(f"input_shape={shape!r}: layer {user.target!r} (Conv1d) expects "
                                 f"(C={m.in_channels}, L)")
        elif isinstance(m, nn.Linear) and shape[-1] != m.in_features:
            raise ValueError(f"input_shape={shape!r}: last dim {shape[-1]} but layer "
                             f"{user.target!r} (Linear) expects {m.in_features} input features")


# Exact types whose output has the input's shape: on the meta device they are skipped (BN's meta
# kernel goes through decompositions that import torch._dynamo, ~2 s the first time).
_SHAPE_PRESERVING = frozenset({
    nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Sigmoid,
    nn.Tanh, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.Identity, nn.Dropout,
    nn.Dropout1d, nn.Dropout2d})


_ELEMENTWISE = frozenset({operator.add, operator.iadd, operator.sub, operator.isub, operator.mul,
                          operator.imul, operator.truediv, operator.itruediv, torch.add, torch.sub,
                          torch.mul})


class TensorShape(NamedTuple):
    """What shape propagation records per tensor (ShapeProp's TensorMetadata, minus the parts
    whose computation imports sympy): ``node.meta["tensor_meta"]``."""

    shape: torch.Size
    dtype: torch.dtype


# quantized (bits-protocol) subclasses whose shapes come from their torch base class's forward
_FLOAT_FORWARD = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.MultiheadAttention)


class _ShapeRecorder(fx.Interpreter):
    """fx.Interpreter that stores ``tensor_meta`` like ShapeProp, without printing tracebacks."""

    def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
        # elementwise binary ops on meta tensors: broadcast shape directly (their meta kernels
        # are Python prims that import torch._dynamo on first use)
        if target in _ELEMENTWISE and not kwargs and len(args) == 2:
            metas = [a for a in args if isinstance(a, torch.Tensor)]
            if metas and all(a.device.type == "meta" for a in metas) and all(
                    isinstance(a, torch.Tensor | int | float) for a in args):
                shape = torch.broadcast_shapes(*(a.shape for a in metas))
                return torch.empty(shape, dtype=metas[0].dtype, device="meta")
        return super().call_function(target, args, kwargs)

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        m = self.fetch_attr(target)
        base = next((b for b in _FLOAT_FORWARD if isinstance(m, b)), None)
        if base is not None and is_quantized(m) and all(
                a.device.type == "meta" for a in args if isinstance(a, torch.Tensor)):
            # a quantized transposed conv or attention has its float base class's shapes (its
            # quantizers may need real values)
            return base.forward(m, *args, **kwargs)
        x = args[0] if len(args) == 1 and not kwargs else None
        if isinstance(x, torch.Tensor) and x.device.type == "meta":
            if type(m) in _SHAPE_PRESERVING:
                if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and (
                        x.dim() < 2 or x.shape[1] != m.num_features):
                    raise RuntimeError(f"{type(m).__name__}({m.num_features}) got input of shape "
                                       f"{tuple(x.shape)}")
                return x
            if is_quantized(m):
                # bits protocol: a quantized conv/linear has its base class's output shape and a
                # quantized activation is elementwise (its quantizers may need real values)
                if isinstance(m, nn.Conv2d):
                    return nn.Conv2d._conv_forward(m, x, m.weight, m.bias)
                if isinstance(m, nn.Conv1d):
                    return nn.Conv1d._conv_forward(m, x, m.weight, m.bias)
                if not isinstance(m, nn.Linear) and op_kind(m) is None:
                    return x
            if isinstance(m, nn.Linear) and (type(m) is nn.Linear or is_quantized(m)):
                if x.dim() < 1 or x.shape[-1] != m.in_features:
                    raise RuntimeError(f"Linear({m.in_features}, {m.out_features}) got input of "
                                       f"shape {tuple(x.shape)}")
                return torch.empty((*x.shape[:-1], m.out_features), dtype=x.dtype, device="meta")
            if type(m) in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d) and x.dim() in (3, 4):
                size = m.output_size
                oh, ow = (size, size) if isinstance(size, int) else size
                out = (*x.shape[:-2], x.shape[-2] if oh is None else oh,
                       x.shape[-1] if ow is None else ow)
                return torch.empty(out, dtype=x.dtype, device="meta")
        return super().call_module(target, args, kwargs)

    def run_node(self, n: fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as e:
            raise _NodeFailureError(f"node {n.name!r} ({n.op} {_target_name(n)})") from e
        found = False

        def meta_of(obj: Any) -> Any:
            nonlocal found
            if isinstance(obj, torch.Tensor):
                found = True
                return TensorShape(obj.shape, obj.dtype)
            return obj

        meta = map_aggregate(result, meta_of)
        if found:
            n.meta["tensor_meta"] = meta
        n.meta["type"] = type(result)
        return result


class _MetaRun(nn.Module):
    """Wrapper so ``torch.func.functional_call`` can swap the graph's parameters and buffers
    for meta tensors (restored afterwards) while `_ShapeRecorder` runs it."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, *args: Any) -> Any:
        return _ShapeRecorder(self.gm).run(*args)


class _NodeFailureError(RuntimeError):
    pass


def _extra_args(gm: fx.GraphModule, model: nn.Module, concrete: dict[str, Any]) -> list[Any]:
    """Values for the placeholders after the tensor input (fx keeps one per concrete arg)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    params = [p for p in inspect.signature(type(model).forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
              ][1:]   # drop self; fx adds keyword-only placeholders after the positional ones
    values: list[Any] = []
    for i, ph in enumerate(placeholders[1:], start=1):
        p = params[i] if i < len(params) else None
        if p is not None and p.name in concrete:
            values.append(concrete[p.name])
        elif p is not None and p.default is not p.empty:
            values.append(p.default)
        else:
            raise ExtractError(
                f"{type(model).__name__}.forward takes more than one input ({ph.target!r}); "
                "extract() feeds exactly one tensor. Fix: bind the others with "
                "concrete_args={name: value}")
    return values


def _target_name(n: fx.Node) -> str:
    t = n.target
    return t if isinstance(t, str) else getattr(t, "__name__", repr(t))


_ID_VIEWS_M = frozenset({"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute",
                         "transpose", "contiguous", "t", "long", "int"})
_ID_VIEWS_F = frozenset({torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
                         torch.transpose, torch.permute, operator.getitem})


def _reads_indices(gm: fx.GraphModule) -> bool:
    """Whether the input is token ids: an ``nn.Embedding``/``EmbeddingBag`` (or its function)
    reads it, directly or through reshapes, so it is fed as integers (zeros), not floats the
    lookup would refuse."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if not placeholders:
        return False
    mods = dict(gm.named_modules())
    lookups = (torch.nn.functional.embedding, torch.nn.functional.embedding_bag)
    todo, seen = list(placeholders[0].users), set()
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        mod = mods.get(str(u.target)) if u.op == "call_module" else None
        if isinstance(mod, nn.Embedding | nn.EmbeddingBag) or (
                u.op == "call_function" and u.target in lookups):
            return True
        if ((u.op == "call_method" and u.target in _ID_VIEWS_M)
                or (u.op == "call_function" and u.target in _ID_VIEWS_F)
                or isinstance(mod, nn.Flatten | nn.Unflatten)):
            todo += list(u.users)
    return False


def propagate_shapes(gm: fx.GraphModule, model: nn.Module, input_shape: Sequence[int],
                     batch: int, concrete_args: dict[str, Any] | None = None) -> None:
    """Run one (batch, *input_shape) input through ``gm``; store shapes in ``node.meta``.

    It runs on the ``meta`` device (parameters and buffers swapped for meta tensors: no
    arithmetic, no memory, cost independent of batch and of machine load; the first call in a
    process pays well under a second), falling back to one real forward pass on zeros if a
    module needs tensor values (e.g. an unknown leaf calling ``.item()``). Bits-protocol modules
    never force the fallback: a quantized conv/linear gets its base class's output shape and a
    quantized activation is elementwise, whatever its quantizers compute. Both run in eval mode
    under no_grad, so BN statistics are untouched; the train/eval flags of every module are
    restored afterwards. Failures become `ExtractError` naming the node.
    """
    extra = _extra_args(gm, model, concrete_args or {})
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if _reads_indices(gm):
        dtype = torch.long
    device = param.device if param is not None else torch.device("cpu")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            if device.type != "meta":
                try:
                    runner = _MetaRun(gm)
                    state = {n: torch.empty_like(t, device="meta")
                             for n, t in (*runner.named_parameters(), *runner.named_buffers())}
                    x = torch.empty((batch, *input_shape), dtype=dtype, device="meta")
                    torch.func.functional_call(runner, state, (x, *extra))
                    return
                except Exception as e:
                    log.debug("meta-device shape propagation failed (%s); running a real "
                              "forward pass", e)
                    for node in gm.graph.nodes:
                        node.meta.pop("tensor_meta", None)
            x = torch.zeros((batch, *input_shape), dtype=dtype, device=device)
            _ShapeRecorder(gm).run(x, *extra)
    except _NodeFailureError as e:
        cause = e.__cause__
        where = e.args[0].splitlines()[0] if e.args else "?"
        raise ExtractError(
            f"shape propagation of {type(model).__name__} failed at {where} for input "
            f"(batch={batch}, *input_shape={tuple(input_shape)}): {type(cause).__name__}: "
            f"{cause}. Check that input_shape is the (C, H, W) the model expects.") from cause
    finally:
        for m, mode in modes.items():
            m.training = mode
