"""Modules lowered to several ops: ``nn.MultiheadAttention`` (and the functional
``F.scaled_dot_product_attention``: its ``scores``, ``softmax`` and ``context``), and ``nn.LSTM`` /
``nn.GRU`` / ``nn.RNN``.

torch.fx keeps these torch.nn built-ins as leaves; their forward passes are fused kernels, so the
tracer cannot look inside. `expand` writes out the GEMMs each one runs (the ones
``torch.utils.flop_counter`` sees, checked in the tests) as `Op` records with edges between them.

Multi-head attention (E = embed_dim, H heads of d = E/H, L queries, S keys, N sequences;
Vaswani et al. 2017, Sec. 3.2.2; a quantized one, ``quant.attention.QuantMultiheadAttention``,
gives each projection its bits through ``projection_bits``)::

    q_proj  linear  (N*L, E)    x (E, E)        N*L*E*E MACs
    k_proj  linear  (N*S, kdim) x (kdim, E)     N*S*kdim*E
    v_proj  linear  (N*S, vdim) x (vdim, E)     N*S*vdim*E
    scores  matmul  Q K^T per (n, h): (L, d) x (d, S)        N*H*L*S*d
    softmax act     over (N, H, L, S)                        (fused into scores)
    context matmul  P V per (n, h): (L, S) x (S, d)          N*H*L*S*d
    out_proj linear (N*L, E)    x (E, E)        N*L*E*E

Recurrent layers (G gates: 4 for LSTM, 3 for GRU, 1 for RNN; H hidden units, P = proj_size or H;
T steps; per layer and direction, as cuDNN runs them)::

    ih    linear  (N*T, in) x (in, G*H)   every step's input projection in one GEMM
    hh    linear  (N*T, P) x (P, G*H)     T GEMMs of N rows, one after another (meta["steps"];
                                          meta["steps_axis"] = "n" when the time axis is the
                                          batch axis, a time-major input: then the layer's n
                                          counts steps, not sequences)
    cell  act     gates and state update (fused into hh)
    proj  linear  (N*T, H) x (H, P)       LSTM with proj_size > 0

Directions of a bidirectional layer are joined by a ``concat``. The graph is a DAG: the hidden
state a step reads comes from inside ``hh`` itself (the recurrence), so ``hh`` is drawn reading
``ih``'s gate pre-activations, which it adds as it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from workloads.ops import Op, Shape, tensor_shape
from workloads.protocol import is_quantized, projection_bits

__all__ = ["COMPOSITE_MODULES", "Expansion", "Recurrent", "expand", "recurrent_ops"]

COMPOSITE_MODULES = (nn.MultiheadAttention, nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell,
                     nn.RNNCell)
_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}
_CELLS = {nn.LSTMCell: "LSTM", nn.GRUCell: "GRU", nn.RNNCell: "RNN"}
# vector ops per step: the gate pre-activation sums and non-linearities (2 per gate unit), then
# the state update per hidden unit: LSTM c = f*c + i*g, h = o*tanh(c) (5); GRU r*hn,
# (1-z)*n + z*h (4); RNN none


@dataclass
class Expansion:
    """Ops of one composite module, the edges between them, which ops read which input, and the
    op whose output is the module's output."""

    ops: list[Op] = field(default_factory=list)
    edges: list[tuple[str, str, Shape]] = field(default_factory=list)
    reads: list[tuple[fx.Node, str]] = field(default_factory=list)
    exit: str = ""


def _linear(name: str, module: str, rows: int, c: int, k: int, batch: int, *,
            weight_elems: int, bias: bool, out_shape: Shape) -> Op:
    """A linear op of ``rows`` rows (batch folded in), ``c`` inputs and ``k`` outputs."""
    n = batch if rows % batch == 0 else 1
    op = Op(name, "linear", module=module, target=module, out_shape=out_shape,
            dims=dict(n=n, c=c, h=rows // n, w=1, k=k, ho=rows // n, wo=1),
            weight_elems=weight_elems, macs=rows * c * k)
    if bias:
        op.meta["bias_elems"] = k
    return op


def _matmul(name: str, module: str, groups: int, m: int, kdim: int, ncol: int, batch: int,
            out_shape: Shape) -> Op:
    """``groups`` independent (m x kdim) @ (kdim x ncol) products of two activations."""
    rows = groups * m
    n = batch if rows % batch == 0 else 1
    return Op(name, "matmul", module=module, target=module, out_shape=out_shape,
              dims=dict(n=n, c=kdim, h=rows // n, w=1, k=ncol, ho=rows // n, wo=1),
              macs=rows * kdim * ncol)


def _arg(node: fx.Node, index: int, key: str) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(key)


def expand(name: str, mod: nn.Module | None, node: fx.Node, batch: int) -> Expansion:
    """The ops of ``mod`` (one of `COMPOSITE_MODULES`, or None for
    ``F.scaled_dot_product_attention``) called at fx ``node``, named ``name.*``."""
    if mod is None:
        return _sdpa(name, node, batch)
    if isinstance(mod, nn.MultiheadAttention):
        return _attention(name, mod, node, batch)
    if isinstance(mod, nn.LSTMCell | nn.GRUCell | nn.RNNCell):
        return _cell(name, mod, node, batch)
    return _recurrent(name, mod, node, batch)


def _sdpa(name: str, node: fx.Node, batch: int) -> Expansion:
    """``F.scaled_dot_product_attention(q, k, v)``: q (..., L, E), k (..., S, E), v (..., S, Ev)
    -> ``scores`` (Q K^T), ``softmax``, ``context`` (P V) per leading index."""
    q, k, v = (_arg(node, i, key) for i, key in enumerate(("query", "key", "value")))
    q_shape, k_shape, v_shape = (tensor_shape(a) or () for a in (q, k, v))
    if min(len(q_shape), len(k_shape), len(v_shape)) < 2:
        raise ValueError(f"op {name!r} (scaled_dot_product_attention): operand shapes "
                         f"{q_shape}, {k_shape}, {v_shape} are not (..., L, E)")
    lq, e = q_shape[-2:]
    s, ev = k_shape[-2], v_shape[-1]
    lead = q_shape[:-2]
    groups = 1
    for d in lead:
        groups *= d
    scores = _matmul(f"{name}.scores", "", groups, lq, e, s, batch, (*lead, lq, s))
    softmax = Op(f"{name}.softmax", "act", target="softmax", out_shape=(*lead, lq, s),
                 dims=dict(n=1, c=groups, h=lq, w=s, k=groups, ho=lq, wo=s),
                 vector_ops=groups * lq * s)
    context = _matmul(f"{name}.context", "", groups, lq, s, ev, batch, (*lead, lq, ev))
    ex = Expansion(ops=[scores, softmax, context])
    ex.edges = [(scores.name, softmax.name, (*lead, lq, s)),
                (softmax.name, context.name, (*lead, lq, s))]
    ex.reads = [(q, scores.name), (k, scores.name), (v, context.name)]
    ex.exit = context.name
    return ex


def _seq_shape(x: fx.Node, batch_first: bool, what: str) -> tuple[int, int, int]:
    """(N, L, features) of a sequence input: (L, N, F), (N, L, F) if batch_first, or (L, F)."""
    shape = tensor_shape(x) or ()
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) != 3:
        raise ValueError(f"{what}: input shape {shape} is not (L, N, F), (N, L, F) or (L, F)")
    return (shape[0], shape[1], shape[2]) if batch_first else (shape[1], shape[0], shape[2])


def _attention(name: str, m: nn.MultiheadAttention, node: fx.Node, batch: int) -> Expansion:
    q, k, v = (_arg(node, i, key) for i, key in enumerate(("query", "key", "value")))
    what = f"module {name!r} (MultiheadAttention)"
    n, lq, e = _seq_shape(q, m.batch_first, what)
    _, s, kdim = _seq_shape(k, m.batch_first, what)
    _, _, vdim = _seq_shape(v, m.batch_first, what)
    # bias_k/bias_v and add_zero_attn append key/value rows after the projections
    s_att = s + int(m.bias_k is not None) + int(m.add_zero_attn)
    h = m.num_heads
    d = e // h
    bias = m.in_proj_bias is not None
    ex = Expansion()
    proj = {}
    for part, rows, c in (("q", n * lq, e), ("k", n * s, kdim), ("v", n * s, vdim)):
        op = _linear(f"{name}.{part}_proj", name, rows, c, e, batch, weight_elems=c * e,
                     bias=bias, out_shape=(n, rows // n, e))
        ex.ops.append(op)
        proj[part] = op.name
    ex.reads = [(q, proj["q"]), (k, proj["k"]), (v, proj["v"])]
    scores = _matmul(f"{name}.scores", name, n * h, lq, d, s_att, batch, (n, h, lq, s_att))
    softmax = Op(f"{name}.softmax", "act", module=name, target="softmax",
                 out_shape=(n, h, lq, s_att), dims=dict(n=n, c=h, h=lq, w=s_att, k=h, ho=lq,
                                                        wo=s_att), vector_ops=n * h * lq * s_att)
    context = _matmul(f"{name}.context", name, n * h, lq, s_att, d, batch, (n, h, lq, d))
    out_name = f"{name}.out_proj"
    out = _linear(out_name, out_name, n * lq, e, e, batch, weight_elems=e * e,
                  bias=m.out_proj.bias is not None, out_shape=(n, lq, e))
    ex.ops += [scores, softmax, context, out]
    if is_quantized(m):  # quant.attention.QuantMultiheadAttention: bits per projection
        for op in (*(ex.ops[:3]), out):
            op.quantized = True
            op.own_w_bits, op.own_a_bits = projection_bits(m, op.name.rsplit(".", 1)[1])
    ex.edges = [(proj["q"], scores.name, (n, h, lq, d)), (proj["k"], scores.name, (n, h, s, d)),
                (scores.name, softmax.name, (n, h, lq, s_att)),
                (softmax.name, context.name, (n, h, lq, s_att)),
                (proj["v"], context.name, (n, h, s, d)), (context.name, out_name, (n, lq, e))]
    ex.exit = out_name
    return ex


def _recurrent(name: str, m: nn.Module, node: fx.Node, batch: int) -> Expansion:
    kind = next(t for t in _GATES if isinstance(m, t))
    x = node.args[0] if node.args else node.kwargs["input"]
    n, t, features = _seq_shape(x, bool(m.batch_first), f"module {name!r} ({kind.__name__})")
    spec = Recurrent(cell=kind.__name__, hidden=int(m.hidden_size),
                     proj=int(getattr(m, "proj_size", 0) or 0), layers=int(m.num_layers),
                     dirs=2 if m.bidirectional else 1, bias=bool(m.bias))
    time_major = not m.batch_first or len(tensor_shape(x) or ()) == 2  # (L, N, F) or (L, F)
    return recurrent_ops(name, spec, n, t, features, batch, x, node.all_input_nodes[1:],
                         time_major=time_major)


def _cell(name: str, m: nn.Module, node: fx.Node, batch: int) -> Expansion:
    """One step of ``nn.LSTMCell`` / ``GRUCell`` / ``RNNCell`` (input (N, in) or (in,), as a
    model stepping it in a loop calls it): the ``ih`` and ``hh`` GEMMs and ``cell`` of a
    one-step, one-layer recurrent layer."""
    x = node.args[0] if node.args else node.kwargs["input"]
    shape = tensor_shape(x) or ()
    if len(shape) not in (1, 2):
        raise ValueError(f"module {name!r} ({type(m).__name__}) got input of shape {shape}; "
                         "expected (N, input_size) or (input_size,)")
    n, features = (1, shape[0]) if len(shape) == 1 else shape
    kind = next(v for t, v in _CELLS.items() if isinstance(m, t))
    spec = Recurrent(cell=kind, hidden=int(m.hidden_size), bias=bool(m.bias))
    return recurrent_ops(name, spec, n, 1, features, batch, x, node.all_input_nodes[1:])


@dataclass(frozen=True, slots=True)
class Recurrent:
    """A recurrent stack: ``cell`` "LSTM" / "GRU" / "RNN", sizes, layers, directions."""

    cell: str
    hidden: int
    proj: int = 0
    layers: int = 1
    dirs: int = 1
    bias: bool = True


def recurrent_ops(name: str, spec: Recurrent, n: int, t: int, features: int, batch: int,
                  x: Any, states: list[Any], *, time_major: bool = False) -> Expansion:
    """Ops of a recurrent stack over ``n`` sequences of ``t`` steps of ``features`` (module
    doc-string); ``x`` / ``states`` are what the first layer's ``ih`` / ``hh`` read (fx nodes or
    ONNX tensor names). ``time_major``: the input's leading (batch) axis is time, so the ops'
    ``n`` counts steps (``hh.meta["steps_axis"] = "n"``: a simulator re-batching the workload
    changes the step count with it)."""
    gates_per = {"LSTM": 4, "GRU": 3, "RNN": 1}[spec.cell]
    cell_ops = {"LSTM": 5, "GRU": 4, "RNN": 0}[spec.cell]
    hidden, gates, proj = spec.hidden, gates_per * spec.hidden, spec.proj
    out_size = proj or hidden
    rows = n * t
    ex = Expansion()
    prev: list[str] = []                 # ops whose outputs the next layer reads
    for layer in range(spec.layers):
        c_in = features if layer == 0 else out_size * spec.dirs
        ends = []
        for direction in range(spec.dirs):
            stem = f"{name}.l{layer}{'_reverse' if direction else ''}"
            ih = _linear(f"{stem}.ih", name, rows, c_in, gates, batch, weight_elems=c_in * gates,
                         bias=spec.bias, out_shape=(n, t, gates))
            hh = _linear(f"{stem}.hh", name, rows, out_size, gates, batch,
                         weight_elems=out_size * gates, bias=spec.bias, out_shape=(n, t, gates))
            hh.meta["steps"] = t
            if time_major and hh.dims["n"] == t > 1:
                hh.meta["steps_axis"] = "n"
            cell = Op(f"{stem}.cell", "act", module=name, target=spec.cell,
                      out_shape=(n, t, hidden),
                      dims=dict(n=n, c=gates, h=t, w=1, k=hidden, ho=t, wo=1),
                      vector_ops=rows * (2 * gates + cell_ops * hidden))
            ex.ops += [ih, hh, cell]
            ex.edges += [(ih.name, hh.name, (n, t, gates)), (hh.name, cell.name, (n, t, gates))]
            if layer == 0:
                ex.reads.append((x, ih.name))
                ex.reads += [(h0, hh.name) for h0 in states]
            else:
                ex.edges += [(p, ih.name, (n, t, c_in)) for p in prev]
            end = cell.name
            if proj:
                p_op = _linear(f"{stem}.proj", name, rows, hidden, proj, batch,
                               weight_elems=hidden * proj, bias=False, out_shape=(n, t, proj))
                ex.ops.append(p_op)
                ex.edges.append((cell.name, p_op.name, (n, t, hidden)))
                end = p_op.name
            ends.append(end)
        if spec.dirs == 2:
            cat = Op(f"{name}.l{layer}.cat", "concat", module=name, target="cat",
                     out_shape=(n, t, 2 * out_size),
                     dims=dict(n=n, c=2 * out_size, h=t, w=1, k=2 * out_size, ho=t, wo=1))
            ex.ops.append(cat)
            ex.edges += [(e, cat.name, (n, t, out_size)) for e in ends]
            ends = [cat.name]
        prev = ends
    ex.exit = prev[0]
    return ex
