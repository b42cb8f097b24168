"""Which conv/linear layers are a network's first and last: the papers' high-precision ends.

Every recipe but LLSQF keeps "the first and last layers" at higher precision (PACT-SAWB Sec. 4,
LSQ Sec. 3, LLSQ Sec. 4.1, ...). Which layers those are is a property of the dataflow, not of the
order in which ``__init__`` happened to create the modules: a classifier head declared before
the stem, two stems that both read the input, or a feed-forward ``nn.Linear`` behind an attention
block all fool the module order. :func:`end_layers` finds them on a torch.fx trace of the float
model, with the rule `workloads.graph.end_layers` applies to the workload graph (so
:func:`quant.quantize` and the simulator's ``first``/``last`` roles name the same layers):

* first: a compute op that no compute op feeds (it reads the network input, possibly through
  pooling, normalisation, embeddings, reshapes, ...);
* last: a compute op that feeds no compute op (it makes an output).

Compute ops are the graph's convolutions, linear layers and matrix products, whoever computes
them: the layers :func:`quant.quantize` swaps, the weight modules it leaves alone (attention,
recurrent, transposed and 3-d convs), and functional ``F.linear``/``F.conv*``/``matmul``/
``einsum`` calls. Only the swappable layers can take a role, so a model whose first compute op
is an ``nn.LSTM`` has no "first" conv/linear.

A leaf the trace cannot look into (a torch module that contains compute layers, such as
``nn.TransformerEncoderLayer``) counts as one compute op; when it is an end, its first/last
compute submodule in module order takes the role if it is swappable. A model fx cannot trace at
all falls back to the module order, and :func:`end_layers` says so.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

__all__ = ["EndLayers", "end_layers"]

_COMPUTE_MODULES = (
    nn.modules.conv._ConvNd,  # every conv, transposed and 3-d included
    nn.Linear,
    nn.Bilinear,
    nn.MultiheadAttention,
    nn.RNNBase,
    nn.RNNCellBase,
)
_COMPUTE_FUNCTIONS = frozenset({
    F.linear, F.bilinear, F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d,
    F.conv_transpose3d, F.scaled_dot_product_attention, F.multi_head_attention_forward,
    torch.matmul, torch.mm, torch.bmm, torch.einsum, torch.addmm, torch.baddbmm, torch.addbmm,
    operator.matmul,
})
_COMPUTE_METHODS = frozenset({"matmul", "mm", "bmm", "__matmul__", "addmm", "baddbmm"})


@dataclass(frozen=True, slots=True)
class EndLayers:
    """The first and last of a model's swappable conv/linear layers, and how they were found.

    Attributes:
        first, last: qualified module names (several where several layers read the input or
            make an output; empty where the end is not a swappable layer).
        found_by: ``"graph"`` (torch.fx dataflow) or ``"module order: <why the trace failed>"``.
    """

    first: tuple[str, ...]
    last: tuple[str, ...]
    found_by: str


class _Tracer(fx.Tracer):
    """fx's default leaves plus every swappable layer (a plain subclass of nn.Conv2d defined
    outside torch would otherwise be traced into its ``F.conv2d`` call)."""

    def __init__(self, layers: frozenset[str]) -> None:
        super().__init__()
        self._layers = layers

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self._layers or super().is_leaf_module(
            m, module_qualified_name)


def end_layers(model: nn.Module, layers: Sequence[str]) -> EndLayers:
    """The first and last of ``layers`` (qualified names of ``model``'s swappable conv/linear
    layers, in module order) by the dataflow of ``model`` (see the module docstring)."""
    if not layers:
        return EndLayers((), (), "graph")
    try:
        graph = _Tracer(frozenset(layers)).trace(model)
    except Exception as err:  # fx raises many types (TraceError, TypeError, NameError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return EndLayers((layers[0],), (layers[-1],), f"module order: torch.fx failed ({reason})")
    swappable = set(layers)
    nodes = list(graph.nodes)
    compute = {n for n in nodes if _is_compute(model, n)}
    below: set[fx.Node] = set()  # downstream of a compute op
    for n in nodes:  # fx keeps nodes in a topological order
        if any(p in compute or p in below for p in n.all_input_nodes):
            below.add(n)
    above: set[fx.Node] = set()  # upstream of a compute op
    for n in reversed(nodes):
        if any(u in compute or u in above for u in n.users):
            above.add(n)

    def pick(ends: list[fx.Node], inner_index: int) -> tuple[str, ...]:
        out: list[str] = []
        for n in ends:
            if n.op != "call_module":  # a functional conv/linear/matmul: nothing to swap
                continue
            name = str(n.target)
            if name not in swappable:  # an opaque leaf: its first/last compute submodule
                inner = [f"{name}.{c}" for c, m in model.get_submodule(name).named_modules()
                         if c and isinstance(m, _COMPUTE_MODULES)]
                name = inner[inner_index] if inner else ""
            if name in swappable and name not in out:
                out.append(name)
        return tuple(out)

    first = [n for n in nodes if n in compute and n not in below]
    last = [n for n in nodes if n in compute and n not in above]
    return EndLayers(pick(first, 0), pick(last, -1), "graph")


def _is_compute(model: nn.Module, node: fx.Node) -> bool:
    if node.op == "call_module":
        m = model.get_submodule(str(node.target))
        return any(isinstance(s, _COMPUTE_MODULES) for s in m.modules())  # m itself included
    if node.op == "call_function":
        return node.target in _COMPUTE_FUNCTIONS
    if node.op == "call_method":
        return node.target in _COMPUTE_METHODS
    return False
