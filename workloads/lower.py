"""Lowering: a shape-annotated fx graph -> `Workload` (networkx DAG of `Layer` records).

The pipeline, one pass per line, each ending in `_lint` (the ``graph.lint()`` habit):

1. ``_build``     one op per tensor-valued fx node, classified and costed by `workloads.ops`
                  (conv, linear, matmul, pool, add, mul, concat, act, bn, norm, resize, view,
                  other);
                  edges carry the tensor the consumer reads (``shape``).
2. ``_collapse``  zero-cost views (flatten, view, reshape, getitem, dropout, ...) are removed and
                  their producers wired straight to their consumers, so no dependency is lost.
3. ``_fuse``      BN / activations / quantized activations are folded into a neighbour when they
                  cost no memory traffic on an accelerator: into the PRODUCER when they directly
                  follow it and are its only consumer (an output epilogue), else into the single
                  compute CONSUMER (an input prologue, e.g. pre-activation BN-ReLU in front of a
                  conv). Names go to ``Layer.meta["fused"]`` / ``meta["prologue"]``. What cannot be
                  fused stays as a memory-only ``bn`` / ``act`` node.
4. ``_bits``      w_bits / a_bits / o_bits (rules in `extract`'s doc-string) and edge bits/bytes.
5. ``_roles``     "first" / "last" (`workloads.graph.end_layers`: what reads the input, what makes
                  the output; quant.ends applies the same rule) and "shortcut" (a 1x1-style
                  projection: the only compute op on the shorter branch of a two-input add, or a
                  module under ``.shortcut`` / ``.downsample``).
6. records        `Layer` objects and the `Workload`.

MACs (checked against forward hooks in the tests): conv ``N*K*Ho*Wo*(C/groups)*R*S``, linear
``rows*C*K``, matmul ``numel(out)*K``; pooling counts ``vector_ops`` (window reads) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import networkx as nx
from torch import fx, nn

from workloads.composite import expand
from workloads.graph import COMPUTE_OPS, Layer, Workload, bytes_for, end_layers
from workloads.ops import (
    FUSIBLE,
    Op,
    Shape,
    classify,
    cost,
    nchw,
    numel,
    target_name,
    tensor_shape,
)
from workloads.protocol import (
    act_bits,
    is_quantized,
    is_quantized_activation,
    output_bits,
    require_bits,
)
from workloads.protocol import weight_bits as module_weight_bits
from workloads.unsupported import IgnoreSpec, ignored, unsupported_error, unsupported_reason

__all__ = ["add_edge", "lower", "lower_ops"]


log = logging.getLogger(__name__)


def _lint(g: nx.DiGraph, stage: str) -> None:
    """End-of-pass check: a DAG whose every node has an Op and every edge a shape."""
    problems = []
    if not nx.is_directed_acyclic_graph(g):
        problems.append("graph has a cycle")
    problems += [f"node {n!r} has no op record" for n, d in g.nodes(data=True) if "op" not in d]
    problems += [f"edge {u!r}->{v!r} has no shape" for u, v, d in g.edges(data=True)
                 if "shape" not in d]
    if problems:
        raise AssertionError(f"workloads.lower internal error after {stage}: {problems}")


def add_edge(g: nx.DiGraph, u: str, v: str, shape: Shape) -> None:
    """Add u->v; if it exists (v reads two views of u) keep the larger tensor."""
    if g.has_edge(u, v) and numel(shape) <= numel(g.edges[u, v]["shape"]):
        return
    g.add_edge(u, v, shape=shape)


# -- pass 1: build --------------------------------------------------------------------------------
def _names(gm: fx.GraphModule) -> dict[fx.Node, str]:
    """Layer name per node: module qualname (':k' for its k-th reuse), else the fx node name."""
    names: dict[fx.Node, str] = {}
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:          # module names first: users override layers by them
        if node.op == "call_module":
            q = str(node.target)
            k = calls.get(q, 0)
            calls[q] = k + 1
            names[node] = q if k == 0 else f"{q}:{k}"
    taken = set(names.values())
    for node in gm.graph.nodes:
        if node.op == "call_module":
            continue
        name = {"placeholder": "input", "output": "output"}.get(node.op, node.name)
        while name in taken:
            name += "_"
        taken.add(name)
        names[node] = name
    return names


def _build(gm: fx.GraphModule, batch: int, ignore: IgnoreSpec) -> nx.DiGraph:
    g = nx.DiGraph()
    names = _names(gm)
    user_leaves = gm.meta.get("qdse_user_leaves", frozenset())
    unsupported: list[tuple[Op, str]] = []
    # parameters and everything computed from parameters only (w.T, a weight quantizer applied
    # functionally) are weights of the op that reads them, not graph nodes
    params: set[fx.Node] = set()
    first_input = True
    for node in gm.graph.nodes:
        if node.op == "get_attr" or (node.op in ("call_function", "call_method")
                                     and node.all_input_nodes
                                     and all(i in params for i in node.all_input_nodes)):
            params.add(node)
            continue
        shape = tensor_shape(node)
        if node.op == "placeholder":
            if not first_input or shape is None:
                continue    # a concrete (non-tensor) argument
            first_input = False
        elif node.op != "output" and shape is None:
            continue        # a Python value (x.size(0), an int): shape bookkeeping, no tensor
        inputs = [i for i in node.all_input_nodes if i in params or tensor_shape(i) is not None]
        acts = [i for i in inputs if i not in params]
        name = names[node]
        if node.op == "placeholder":
            op = Op(name, "input", out_shape=shape or ())
        elif node.op == "output":
            op = Op(name, "output")
        else:
            kind, mod = classify(node, gm, len(inputs))
            if kind == "composite":
                names[node] = _add_expansion(g, expand(name, mod, node, batch), names)
                continue
            op = Op(name, kind, module=str(node.target) if mod is not None else "",
                     target=target_name(node), out_shape=shape or (), mod=mod)
            cost(op, node, acts, [i for i in inputs if i in params], batch)
            _protocol_bits(op)
            if kind == "other":     # kept only if harmless or ignored on request
                reason = unsupported_reason(op, mod, user_leaves)
                if reason and not ignored(op, ignore):
                    unsupported.append((op, reason))
                    continue
                log.warning("op %r (%s) is not modelled: kept as a memory-only 'other' node",
                            op.name, op.target)
        g.add_node(name, op=op)
        for i in acts:
            add_edge(g, names[i], name, tensor_shape(i) or ())
    if unsupported:
        raise unsupported_error(unsupported, "extract")
    _lint(g, "build")
    return g


def _add_expansion(g: nx.DiGraph, ex: Any, names: dict[fx.Node, str]) -> str:
    """Add a composite module's ops (`workloads.composite`); return the op that is its output."""
    for op in ex.ops:
        g.add_node(op.name, op=op)
    for u, v, shape in ex.edges:
        add_edge(g, u, v, shape)
    for arg, reader in ex.reads:
        if isinstance(arg, fx.Node) and names.get(arg) in g:
            add_edge(g, names[arg], reader, tensor_shape(arg) or ())
    return str(ex.exit)


def _protocol_bits(op: Op) -> None:
    """Copy the bits a bits-protocol module declares into the op record."""
    m = op.mod
    if m is None or not is_quantized(m):
        return
    op.quantized = True
    if op.op in COMPUTE_OPS:
        op.own_w_bits = module_weight_bits(m)
        op.own_a_bits = act_bits(m)
        op.out_quant_bits = output_bits(m)
    elif is_quantized_activation(m):
        op.quantizer_bits = act_bits(m)


# -- pass 2: collapse views ------------------------------------------------------------------
def _collapse(g: nx.DiGraph) -> None:
    for name in list(nx.topological_sort(g)):
        op: Op = g.nodes[name]["op"]
        if op.op != "view":
            continue
        preds = list(g.predecessors(name))
        for s in list(g.successors(name)):
            shape = g.edges[name, s]["shape"]
            for p in preds:
                add_edge(g, p, s, shape)
        g.remove_node(name)
    _lint(g, "collapse")


# -- pass 3: fuse ---------------------------------------------------------------------------------
def _fuse(g: nx.DiGraph) -> None:
    # epilogue: u directly follows p and is p's only consumer -> computed as p's output is written
    for name in list(nx.topological_sort(g)):
        u: Op = g.nodes[name]["op"]
        preds = list(g.predecessors(name))
        if u.op not in FUSIBLE or len(preds) != 1:
            continue
        p: Op = g.nodes[preds[0]]["op"]
        if p.op in ("input", "output") or g.out_degree(p.name) != 1:
            continue
        p.fused += [u.name, *u.fused]
        p.has_bn = p.has_bn or u.op == "bn" or u.has_bn
        if u.out_quant_bits is not None or _quant_bits(u) is not None:
            p.out_quant_bits = _quant_bits(u) or u.out_quant_bits
        p.out_shape = u.out_shape
        for s in list(g.successors(name)):
            add_edge(g, p.name, s, g.edges[name, s]["shape"])
        g.remove_node(name)
    # prologue: u feeds exactly one compute op -> applied as that op reads its input
    for name in list(reversed(list(nx.topological_sort(g)))):
        u = g.nodes[name]["op"]
        succs = list(g.successors(name))
        if u.op not in FUSIBLE or len(succs) != 1 or len(list(g.predecessors(name))) != 1:
            continue
        s_op: Op = g.nodes[succs[0]]["op"]
        if s_op.op not in COMPUTE_OPS:
            continue
        s_op.prologue[:0] = [u.name, *u.fused]
        s_op.prologue_bn = s_op.prologue_bn or u.op == "bn" or u.has_bn
        # the bits of the LAST quantizer u applies (its fused epilogue's, else its own) are
        # those of the values s_op reads on this input; one edge per input, so an op with two
        # inputs (a matmul) keeps each input's bits, and an input it also reads raw stays raw
        bits = u.out_quant_bits if u.out_quant_bits is not None else _quant_bits(u)
        pred = next(iter(g.predecessors(name)))
        had = g.edges[pred, s_op.name] if g.has_edge(pred, s_op.name) else None
        add_edge(g, pred, s_op.name, g.edges[pred, name]["shape"])
        if bits is not None and (had is None or had.get("quant_bits") is not None):
            g.edges[pred, s_op.name]["quant_bits"] = max(bits, had["quant_bits"]) if had else bits
            s_op.in_quant_bits = bits if s_op.in_quant_bits is None else max(s_op.in_quant_bits,
                                                                             bits)
        g.remove_node(name)
    _lint(g, "fuse")


def _quant_bits(op: Op) -> int | None:
    return op.quantizer_bits


# -- pass 4: bits ---------------------------------------------------------------------------------
def _parse_overrides(overrides: Mapping[str, Any] | None,
                     g: nx.DiGraph) -> dict[str, dict[str, int]]:
    """Normalise overrides to {name: {"w_bits"|"a_bits"|"o_bits": int}}; unknown names raise."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ValueError(f"overrides={overrides!r} is invalid; expected a dict "
                         "{layer_name: bits | (w_bits, a_bits) | {'w_bits':..,'a_bits':..,"
                         "'o_bits':..}}")
    fused_into = {f: n for n, d in g.nodes(data=True) for f in (*d["op"].fused, *d["op"].prologue)}
    out: dict[str, dict[str, int]] = {}
    for name, value in overrides.items():
        if name not in g:
            if name in fused_into:
                raise ValueError(f"overrides[{name!r}]: {name!r} was fused into layer "
                                 f"{fused_into[name]!r}; override that layer instead")
            known = sorted(n for n in g if g.nodes[n]["op"].op in COMPUTE_OPS)
            raise ValueError(f"overrides names unknown layer {name!r}; compute layers are: "
                             + ", ".join(known[:40]) + (" ..." if len(known) > 40 else ""))
        op: Op = g.nodes[name]["op"]
        field_ = f"overrides[{name!r}]"
        if isinstance(value, Mapping):
            bad = set(value) - {"w_bits", "a_bits", "o_bits"}
            if bad:
                raise ValueError(f"{field_} has keys {sorted(bad)}; allowed: w_bits, a_bits, "
                                 "o_bits")
            out[name] = {k: require_bits(v, f"{field_}[{k!r}]") for k, v in value.items()}
        elif isinstance(value, tuple | list):
            if len(value) != 2:
                raise ValueError(f"{field_}={value!r} is invalid; expected (w_bits, a_bits)")
            out[name] = {"w_bits": require_bits(value[0], f"{field_}[0]"),
                         "a_bits": require_bits(value[1], f"{field_}[1]")}
        else:
            b = require_bits(value, field_)
            # an int sets a compute layer's weights and inputs; a memory op's stored output
            out[name] = ({"w_bits": b, "a_bits": b} if op.op in COMPUTE_OPS else {"o_bits": b})
    return out


def _bits(g: nx.DiGraph, default_bits: int, ov: dict[str, dict[str, int]]) -> None:
    order = list(nx.topological_sort(g))
    ops: dict[str, Op] = {n: g.nodes[n]["op"] for n in order}
    # forward: bits a quantizer has put on each tensor; max-pooling and concat keep values on the
    # quantizer's grid, averaging and arithmetic leave it (their outputs need more bits)
    qbits: dict[str, int | None] = {}
    for n in order:
        op = ops[n]
        preds = [qbits[p] for p in g.predecessors(n)]
        own = op.out_quant_bits if op.out_quant_bits is not None else _quant_bits(op)
        if own is not None:
            qbits[n] = own
        elif _keeps_grid(op) and preds and all(b is not None for b in preds):
            qbits[n] = max(b for b in preds if b is not None)
        else:
            qbits[n] = None
        if op.op in COMPUTE_OPS:
            wb, ab = op.own_w_bits, op.own_a_bits
            # each input at the bits a quantizer left it: one fused as this op's prologue on
            # that input, else the producer's; any raw input -> unquantized (default_bits)
            ins = [g.edges[p, n].get("quant_bits", qbits[p]) for p in g.predecessors(n)]
            if ab is None and ins and all(b is not None for b in ins):
                ab = max(b for b in ins if b is not None)
            op.w_bits = wb if wb is not None else default_bits
            op.a_bits = ab if ab is not None else default_bits
            op.w_bits = ov.get(n, {}).get("w_bits", op.w_bits)
            op.a_bits = ov.get(n, {}).get("a_bits", op.a_bits)
    # backward: a tensor is stored at the highest precision any reader needs
    for n in reversed(order):
        op = ops[n]
        q = qbits[n]
        if "o_bits" in ov.get(n, {}):
            op.o_bits = ov[n]["o_bits"]
        elif q is not None:
            op.o_bits = q
        elif op.op == "output":
            op.o_bits = default_bits
        else:
            needs = [_need(ops[s], op, default_bits) for s in g.successors(n)]
            op.o_bits = max(needs) if needs else default_bits
    # forward again: memory ops read at their inputs' bits
    for n in order:
        op = ops[n]
        if op.op not in COMPUTE_OPS:
            in_bits = [ops[p].o_bits for p in g.predecessors(n)]
            op.a_bits = ov.get(n, {}).get("a_bits", max(in_bits) if in_bits else op.o_bits)
            op.w_bits = ov.get(n, {}).get("w_bits", op.a_bits if op.weight_elems else default_bits)
            if op.op == "output":
                op.o_bits = op.a_bits
    for u, _, d in g.edges(data=True):
        d["bits"] = ops[u].o_bits
        d["bytes"] = bytes_for(numel(d["shape"]), d["bits"])
    _lint(g, "bits")


def _keeps_grid(op: Op) -> bool:
    """Ops whose outputs are a subset of their input values (max-pool, concat)."""
    if op.op == "concat":
        return True
    kind = str(op.meta.get("pool", "")).lower()
    return op.op == "pool" and ("max" in kind)


def _need(consumer: Op, producer: Op, default_bits: int) -> int:
    """Bits at which ``consumer`` needs ``producer``'s output stored.

    Storing below ``default_bits`` (the precision of unquantized values) is exact only where the
    reader would quantize the value anyway, or where the reader commutes with quantization.
    """
    if consumer.op in COMPUTE_OPS:
        # the producer's epilogue can requantize to the reader's input bits, unless the reader
        # first applies a BN (affine, fused as prologue) to the raw value
        return default_bits if consumer.prologue_bn else consumer.a_bits
    if consumer.op == "output":         # network result: the wider of its operands' precisions
        return max(producer.w_bits, producer.a_bits) if producer.op in COMPUTE_OPS \
            else default_bits
    if _quant_bits(consumer) is None and (consumer.op == "concat" or _keeps_grid(consumer) or (
            consumer.op == "act" and not consumer.has_bn)):
        return consumer.o_bits         # max-pool, concat, ReLU-like: commute with quantization
    return default_bits                # add, average, BN, a quantizer's own input: raw values


# -- pass 5: roles --------------------------------------------------------------------------------
def _roles(g: nx.DiGraph) -> None:
    """``shortcut`` on projection shortcuts (a module named shortcut/downsample, or the single
    compute op of the shorter branch into an add), then ``first`` / ``last`` on the network's
    end layers (`workloads.graph.end_layers`: what reads the input, what makes the output)."""
    compute = [n for n in nx.lexicographical_topological_sort(g)
               if g.nodes[n]["op"].op in COMPUTE_OPS]
    for n in compute:
        op: Op = g.nodes[n]["op"]
        parts = op.module.split(".")
        if "shortcut" in parts or "downsample" in parts:
            op.role = "shortcut"
    for a in (n for n in g if g.nodes[n]["op"].op == "add"):
        preds = list(g.predecessors(a))
        if len(preds) != 2:
            continue
        anc = [nx.ancestors(g, p) | {p} for p in preds]
        common = anc[0] & anc[1]
        branch = [[x for x in s - common if g.nodes[x]["op"].op in COMPUTE_OPS] for s in anc]
        short = min(branch, key=len)
        if len(short) == 1 and len(max(branch, key=len)) > 1:
            g.nodes[short[0]]["op"].role = "shortcut"
    firsts, lasts = end_layers(g, lambda n: g.nodes[n]["op"].op in COMPUTE_OPS)
    for n in firsts:
        g.nodes[n]["op"].role = "first"
    for n in lasts:
        g.nodes[n]["op"].role = "last"
    _lint(g, "roles")


# -- records --------------------------------------------------------------------------------------
def _layer(op: Op, g: nx.DiGraph) -> Layer:
    d = dict(op.dims)
    in_elems = sum(numel(g.edges[p, op.name]["shape"]) for p in g.predecessors(op.name))
    out_elems = numel(op.out_shape)
    if op.op == "input":
        n, c, h, w = nchw(op.out_shape)
        d = dict(n=n, c=c, h=h, w=w, k=c, ho=h, wo=w)
        in_elems = 0
    elif op.op == "output":
        shapes = [g.edges[p, op.name]["shape"] for p in sorted(g.predecessors(op.name))]
        if len(shapes) == 1:
            n, c, h, w = nchw(shapes[0])
        else:                   # several results: one flat (n, total/n) view of all of them
            n = shapes[0][0] if shapes and shapes[0] else 1
            n, c, h, w = n, in_elems // max(n, 1), 1, 1
        d = dict(n=n, c=c, h=h, w=w, k=c, ho=h, wo=w)
        out_elems = 0
    elif op.op in COMPUTE_OPS and op.op != "matmul":
        in_elems = d["n"] * d["c"] * d["h"] * d["w"]
    meta = dict(op.meta)
    if op.fused:
        meta["fused"] = list(op.fused)
    if op.prologue:
        meta["prologue"] = list(op.prologue)
    if op.target and op.target != op.module and op.op not in ("input", "output"):
        meta.setdefault("target", op.target)
    if op.quantized:
        meta["quantized"] = True
    return Layer(name=op.name, op=op.op, macs=int(op.macs), vector_ops=int(op.vector_ops),
                 w_bits=op.w_bits, a_bits=op.a_bits, o_bits=op.o_bits,
                 weight_elems=int(op.weight_elems), input_elems=int(in_elems),
                 output_elems=int(out_elems), module=op.module, role=op.role, meta=meta, **d)


def lower(gm: fx.GraphModule, model: nn.Module, *, batch: int, input_shape: tuple[int, ...],
          default_bits: int, overrides: Mapping[str, Any] | None, name: str,
          ignore_unsupported: IgnoreSpec = False) -> Workload:
    """Run passes 1-6 on a traced, shape-propagated GraphModule (see the module doc-string)."""
    g = _build(gm, batch, ignore_unsupported)
    return lower_ops(g, batch=batch, input_shape=input_shape, default_bits=default_bits,
                     overrides=overrides, name=name)


def lower_ops(g: nx.DiGraph, *, batch: int, input_shape: tuple[int, ...], default_bits: int,
              overrides: Mapping[str, Any] | None, name: str) -> Workload:
    """Passes 2-6 on a graph of `Op` records (``g.nodes[n]["op"]``, edges with ``shape``).

    The entry point for importers that build ops without torch.fx (`workloads.onnx_import`).
    """
    _lint(g, "build")
    n_built = g.number_of_nodes()
    _collapse(g)
    _fuse(g)
    log.debug("lowered %d ops to %d workload ops (views collapsed, BN/activations fused)",
              n_built, g.number_of_nodes())
    ov = _parse_overrides(overrides, g)
    _bits(g, default_bits, ov)
    _roles(g)
    out = nx.DiGraph()
    for n in g:
        out.add_node(n, layer=_layer(g.nodes[n]["op"], g))
    for u, v, d in g.edges(data=True):
        out.add_edge(u, v, shape=tuple(d["shape"]), bits=int(d["bits"]), bytes=int(d["bytes"]))
    wl = Workload(out, name=name, batch=batch, input_shape=input_shape)
    problems = wl.lint()
    if problems:
        raise RuntimeError(f"workloads.lower internal error, inconsistent workload: {problems}")
    return wl
