"""The workload graph: the one typed value that leaves `workloads/` for the simulator.

A `Workload` wraps a `networkx.DiGraph` whose nodes are keyed by operation name and carry one
`Layer` record each (``graph.nodes[name]["layer"]``). Edges carry the tensor that flows between two
operations: ``shape`` (tuple of ints, batch included), ``bits`` and ``bytes``.

Conventions (the simulator relies on them):

* Every dimension is for the batch the workload was extracted with
  (``Layer.n`` == ``Workload.batch``).
  Per-image quantities are the batch quantities divided by ``n``.
* Compute ops (``Layer.is_compute``) are ``conv`` (incl. depthwise / grouped, ``groups > 1``),
  ``linear`` and ``matmul``. Their GEMM view is ``groups`` independent GEMMs of
  ``gemm_m x gemm_k`` by ``gemm_k x gemm_n`` (SCALE-Sim notation: M = output pixels, N = filters,
  K = R*S*C per group).
* Memory-only ops (``pool``, ``add``, ``concat``, ``act``, ``flatten``, ``bn``, ...) have
  ``macs == 0`` (pooling records its comparisons/adds in ``vector_ops``) and move
  ``input_bytes`` / ``output_bytes``.
* ``input`` / ``output`` pseudo-nodes mark the graph boundary; they have no cost of their own.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from workloads.atomic import atomic_write_text

__all__ = ["COMPUTE_OPS", "Layer", "Workload", "bytes_for", "end_layers"]

COMPUTE_OPS = frozenset({"conv", "linear", "matmul"})
_FORMAT_VERSION = 1


def bytes_for(elements: int, bits: int) -> int:
    """Bytes needed to store ``elements`` values of ``bits`` bits each, densely packed."""
    return math.ceil(elements * bits / 8)


@dataclass(frozen=True, slots=True)
class Layer:
    """One operation of the workload, lowered to plain numbers.

    Shapes use the convolution names of the issue: input N x C x H x W, K output channels,
    R x S kernel, output N x K x Ho x Wo. A linear layer is a 1x1 convolution on a 1x1 image
    (H = W = Ho = Wo = 1) unless it acts on extra leading dims, which are folded into ``h``.
    """

    name: str
    op: str
    n: int = 1
    c: int = 0
    h: int = 1
    w: int = 1
    k: int = 0
    r: int = 1
    s: int = 1
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    ho: int = 1
    wo: int = 1
    macs: int = 0
    vector_ops: int = 0
    w_bits: int = 16
    a_bits: int = 16
    o_bits: int = 16
    weight_elems: int = 0
    input_elems: int = 0
    output_elems: int = 0
    module: str = ""
    """Qualified name of the nn.Module this op came from ('' for functional ops)."""
    role: str = ""
    """Free-form tag: 'first', 'last', 'shortcut' (1x1 projection on a residual), or ''."""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # -- derived -------------------------------------------------------------------------------
    @property
    def is_compute(self) -> bool:
        return self.op in COMPUTE_OPS

    @property
    def weight_bytes(self) -> int:
        return bytes_for(self.weight_elems, self.w_bits)

    @property
    def input_bytes(self) -> int:
        return bytes_for(self.input_elems, self.a_bits)

    @property
    def output_bytes(self) -> int:
        return bytes_for(self.output_elems, self.o_bits)

    @property
    def gemm_m(self) -> int:
        """Output pixels (batch included): rows of the GEMM."""
        return self.n * self.ho * self.wo

    @property
    def gemm_n(self) -> int:
        """Filters per group: columns of the GEMM."""
        return self.k // self.groups if self.groups else self.k

    @property
    def gemm_k(self) -> int:
        """Reduction depth per group: R*S*C/groups."""
        return self.r * self.s * (self.c // self.groups if self.groups else self.c)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stride"] = list(self.stride)
        d["padding"] = list(self.padding)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layer:
        d = dict(d)
        d["stride"] = tuple(d.get("stride", (1, 1)))
        d["padding"] = tuple(d.get("padding", (0, 0)))
        return cls(**d)


class Workload:
    """A DAG of `Layer` records with tensor edges. Build it with `workloads.extract` or by hand.

    ``graph`` node keys are layer names; ``graph.nodes[name]["layer"]`` is the `Layer`.
    Edge attributes: ``shape`` (tuple), ``bits`` (int), ``bytes`` (int).
    """

    def __init__(self, graph: nx.DiGraph, name: str = "", batch: int = 1,
                 input_shape: tuple[int, ...] = ()) -> None:
        self.graph = graph
        self.name = name
        self.batch = batch
        self.input_shape = tuple(input_shape)
        self.check()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_layers(cls, layers: list[Layer], edges: list[tuple[str, str]] | None = None,
                    name: str = "", batch: int = 1,
                    input_shape: tuple[int, ...] = ()) -> Workload:
        """Build from records; ``edges=None`` chains the layers in the given order.

        Edge tensors default to the producer's output (shape N x K x Ho x Wo, bits o_bits).
        """
        g = nx.DiGraph()
        for layer in layers:
            g.add_node(layer.name, layer=layer)
        if edges is None:
            edges = [(a.name, b.name) for a, b in itertools.pairwise(layers)]
        by_name = {la.name: la for la in layers}
        for src, dst in edges:
            p = by_name[src]
            g.add_edge(src, dst, shape=(p.n, p.k, p.ho, p.wo), bits=p.o_bits,
                       bytes=p.output_bytes)
        return cls(g, name=name, batch=batch, input_shape=input_shape)

    def check(self) -> None:
        """Raise ValueError listing every structural problem (the graph.lint() habit)."""
        problems: list[str] = []
        if not nx.is_directed_acyclic_graph(self.graph):
            problems.append("graph has a cycle")
        for name, data in self.graph.nodes(data=True):
            layer = data.get("layer")
            if not isinstance(layer, Layer):
                problems.append(f"node {name!r} has no Layer record under 'layer'")
            elif layer.name != name:
                problems.append(f"node key {name!r} != Layer.name {layer.name!r}")
            elif layer.macs < 0:
                problems.append(f"layer {name!r}: macs={layer.macs} is negative")
        if problems:
            raise ValueError("invalid workload: " + "; ".join(problems))

    # -- iteration and totals --------------------------------------------------------------------
    def __iter__(self) -> Iterator[Layer]:
        """Layers in deterministic topological order (lexicographic ties)."""
        for name in nx.lexicographical_topological_sort(self.graph):
            yield self.graph.nodes[name]["layer"]

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __getitem__(self, name: str) -> Layer:
        return self.graph.nodes[name]["layer"]

    def topo_order(self) -> list[str]:
        return list(nx.lexicographical_topological_sort(self.graph))

    def compute_layers(self) -> list[Layer]:
        return [la for la in self if la.is_compute]

    def first_last_layers(self) -> tuple[list[str], list[str]]:
        """The network's first and last compute layers (`end_layers`), in graph order."""
        return end_layers(self.graph, lambda n: self.graph.nodes[n]["layer"].is_compute)

    def predecessors(self, name: str) -> list[str]:
        return sorted(self.graph.predecessors(name))

    def successors(self, name: str) -> list[str]:
        return sorted(self.graph.successors(name))

    def input_modules(self, name: str) -> list[str]:
        """Modules applied to the tensors that reach layer ``name``'s input, nearest last.

        Walks back from ``name`` through the ops that keep values unchanged (max-pooling, concat)
        to the ops that wrote them, collecting the modules fused there: each producer's output
        epilogue (``meta["fused"]``), standalone ``act``/``bn`` nodes, and ``name``'s own input
        prologue (``meta["prologue"]``). It stops at arithmetic (add, average pool, compute).
        Use it to find the activation quantizer (e.g. a ``QuantAct``) that sets a layer's input
        precision, wherever extraction fused it.
        """
        found: list[str] = []
        stack, seen = list(self.predecessors(name)), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            la = self[n]
            found += [m for m in la.meta.get("fused", []) if m not in found]
            if la.op in ("act", "bn") and la.module and la.module not in found:
                found.append(la.module)
            passes_values = la.op == "concat" or (
                la.op == "pool" and "max" in str(la.meta.get("pool", "")).lower())
            if passes_values:
                stack.extend(self.predecessors(n))
        found += [m for m in self[name].meta.get("prologue", []) if m not in found]
        return found

    @property
    def total_macs(self) -> int:
        return int(sum(la.macs for la in self))

    @property
    def weight_bytes(self) -> int:
        return int(sum(la.weight_bytes for la in self))

    @property
    def activation_bytes(self) -> int:
        """Bytes of every op's output tensor at its bits (the activation footprint, all layers)."""
        return int(sum(la.output_bytes for la in self if la.op not in ("input", "output")))

    # -- tables ------------------------------------------------------------------------------------
    @property
    def layers(self) -> pd.DataFrame:
        """One row per compute node, in topological order."""
        rows = []
        for la in self.compute_layers():
            d = la.to_dict()
            d.pop("meta")
            d["stride"] = tuple(la.stride)
            d["padding"] = tuple(la.padding)
            d["weight_bytes"] = la.weight_bytes
            d["input_bytes"] = la.input_bytes
            d["output_bytes"] = la.output_bytes
            rows.append(d)
        cols = ["name", "op", "macs", "w_bits", "a_bits", "o_bits", "weight_bytes", "input_bytes",
                "output_bytes"]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=cols)
        return df[cols + [c for c in df.columns if c not in cols]]

    @property
    def ops(self) -> pd.DataFrame:
        """One row per node (memory-only and boundary ops included), in topological order."""
        rows = []
        for la in self:
            d = la.to_dict()
            d.pop("meta")
            d["stride"] = tuple(la.stride)
            d["padding"] = tuple(la.padding)
            d.update(weight_bytes=la.weight_bytes, input_bytes=la.input_bytes,
                     output_bytes=la.output_bytes, fused=",".join(la.meta.get("fused", [])))
            rows.append(d)
        return pd.DataFrame(rows)

    def totals(self) -> dict[str, int]:
        """Whole-graph sums: MACs, vector ops, weight / activation bytes, compute-op count."""
        return {"macs": self.total_macs,
                "vector_ops": int(sum(la.vector_ops for la in self)),
                "weight_bytes": self.weight_bytes,
                "activation_bytes": self.activation_bytes,
                "compute_ops": len(self.compute_layers()),
                "ops": len(self)}

    def summary(self, compute_only: bool = False) -> str:
        """Human-readable layer table (one line per op in topological order) with totals."""
        head = (f"{'name':<28} {'op':<7} {'role':<8} {'in (CxHxW)':>15} {'out (KxHoxWo)':>15} "
                f"{'RxS/s':>7} {'g':>4} {'MMACs':>9} {'w/a/o bits':>10} {'W KiB':>9} "
                f"{'in KiB':>9} {'out KiB':>9}")
        lines = [f"Workload {self.name!r}: batch {self.batch}, input {self.input_shape}",
                 head, "-" * len(head)]
        transposed = False
        for la in self:
            if compute_only and not la.is_compute:
                continue
            kern = f"{la.r}x{la.s}/{la.stride[0]}" if la.op in ("conv", "pool") else ""
            out = f"{la.k}x{la.ho}x{la.wo}"
            tr = la.meta.get("transposed")
            if tr:      # its real output and kernel, not the GEMM's columns (k = K*R*S)
                out = f"{tr['out_channels']}x{tr['out_hw'][0]}x{tr['out_hw'][1]}"
                kern = f"{tr['kernel'][0]}x{tr['kernel'][1]}/{max(tr['stride'])}T"
                transposed = True
            w_bits = str(la.w_bits) if la.weight_elems else "-"
            bits = f"{w_bits}/{la.a_bits}/{la.o_bits}"
            groups = la.groups if la.is_compute else ""
            lines.append(
                f"{la.name[:28]:<28} {la.op:<7} {la.role:<8} {f'{la.c}x{la.h}x{la.w}':>15} "
                f"{out:>15} {kern:>7} {groups:>4} "
                f"{la.macs / 1e6:>9.2f} {bits:>10} "
                f"{la.weight_bytes / 1024:>9.1f} {la.input_bytes / 1024:>9.1f} "
                f"{la.output_bytes / 1024:>9.1f}")
        t = self.totals()
        if transposed:
            lines.append("T: transposed conv, costed as its col2im GEMM (MACs = N*H*W*C/g*K*R*S)")
        ignored = self.ignored()
        if ignored:
            lines.append("ignored (not modelled, no arithmetic counted): " + ", ".join(
                f"{n} ({target})" for n, target in ignored.items()))
        lines += ["-" * len(head),
                  f"total: {t['ops']} ops ({t['compute_ops']} compute), "
                  f"{t['macs'] / 1e9:.4f} GMACs, {t['vector_ops'] / 1e6:.2f} M vector ops, "
                  f"weights {t['weight_bytes'] / 2**20:.3f} MiB, "
                  f"activations {t['activation_bytes'] / 2**20:.3f} MiB"]
        return "\n".join(lines)

    def ignored(self) -> dict[str, str]:
        """Ops kept without a cost model (``op == "other"``): layer name -> what it computes
        (the fx/ONNX target). Extraction lists them only when asked to ignore them."""
        return {la.name: str(la.meta.get("unsupported", la.module or "?"))
                for la in self if la.op == "other"}

    def lint(self) -> list[str]:
        """Consistency problems beyond `check` (empty list = consistent).

        Edges: bytes == ceil(numel(shape) * bits / 8) and bits == the producer's o_bits;
        conv MACs == N*K*Ho*Wo*(C/groups)*R*S and linear MACs == N*Ho*C*K; memory ops have no MACs;
        every conv has n == batch. `workloads.extract` raises if this is not empty.
        """
        problems: list[str] = []
        for u, v, d in self.graph.edges(data=True):
            shape, bits = tuple(d.get("shape", ())), d.get("bits")
            if bits != self[u].o_bits:
                problems.append(f"edge {u}->{v}: bits={bits} != o_bits {self[u].o_bits} of {u}")
            if shape and d.get("bytes") != bytes_for(math.prod(shape), int(bits or 0)):
                problems.append(f"edge {u}->{v}: bytes={d.get('bytes')} != size of {shape} at "
                                f"{bits} bits")
        for la in self:
            if la.op == "conv":
                want = la.n * la.k * la.ho * la.wo * (la.c // max(la.groups, 1)) * la.r * la.s
            elif la.op == "linear":
                want = la.n * la.ho * la.wo * la.c * la.k
            elif la.is_compute:
                continue
            else:
                want = 0
            if la.macs != want:
                problems.append(f"layer {la.name!r} ({la.op}): macs={la.macs}, dims give {want}")
            if la.is_compute and la.groups and (la.c % la.groups or la.k % la.groups):
                problems.append(f"layer {la.name!r}: groups={la.groups} does not divide "
                                f"c={la.c} and k={la.k}")
            if la.op == "conv" and la.n != self.batch:
                problems.append(f"layer {la.name!r}: n={la.n} != batch {self.batch}")
        return problems

    # -- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": "qdse.workload",
            "version": _FORMAT_VERSION,
            "name": self.name,
            "batch": self.batch,
            "input_shape": list(self.input_shape),
            "nodes": [self.graph.nodes[n]["layer"].to_dict() for n in self.topo_order()],
            "edges": [
                {"src": u, "dst": v, "shape": list(d.get("shape", ())), "bits": d.get("bits", 0),
                 "bytes": d.get("bytes", 0)}
                for u, v, d in sorted(self.graph.edges(data=True), key=lambda e: (e[0], e[1]))
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        if data.get("format") != "qdse.workload":
            raise ValueError(f"not a qdse workload file: format={data.get('format')!r}, "
                             "expected 'qdse.workload'")
        g = nx.DiGraph()
        for nd in data["nodes"]:
            layer = Layer.from_dict(nd)
            g.add_node(layer.name, layer=layer)
        for e in data["edges"]:
            g.add_edge(e["src"], e["dst"], shape=tuple(e["shape"]), bits=e["bits"],
                       bytes=e["bytes"])
        return cls(g, name=data.get("name", ""), batch=data.get("batch", 1),
                   input_shape=tuple(data.get("input_shape", ())))

    def save(self, path: str | Path) -> None:
        """Write JSON atomically: a temporary file of this call's own beside ``path``
        (``.<name>.<pid>.<random>.tmp``), fsynced, renamed over it (`workloads.atomic`)."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=1))

    def to_scalesim(self, path: str | Path, *, format: str = "conv") -> Path:
        """Write the compute layers as a SCALE-Sim topology CSV ("conv" or "gemm" format); see
        `workloads.scalesim_io.to_scalesim`."""
        from workloads.scalesim_io import to_scalesim

        return to_scalesim(self, path, format=format)

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        return cls.from_json(json.loads(Path(path).read_text()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workload):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return (f"Workload({self.name!r}, {len(self)} ops, {len(self.compute_layers())} compute, "
                f"{self.total_macs / 1e9:.3f} GMACs, batch={self.batch})")


def end_layers(graph: nx.DiGraph,
               is_compute: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """The first and last compute nodes of ``graph`` in its (lexicographic topological) order:
    those no compute node feeds, directly or through memory ops (they read the network input),
    and those that feed no compute node (they make the output). A chain has one of each; q/k/v
    projections that all read the input are all first; an LSTM's recurrent ``hh`` is fed by its
    ``ih``. What "first and last layer" means for the papers' high-precision ends, whatever
    module or function made the layer (`Layer.role`, the command lines' ``--first-last-bits``)."""
    order = list(nx.lexicographical_topological_sort(graph))
    compute = {n for n in order if is_compute(n)}
    below: set[str] = set()  # nodes downstream of a compute node
    for n in order:
        if any(p in compute or p in below for p in graph.predecessors(n)):
            below.add(n)
    above: set[str] = set()  # nodes upstream of a compute node
    for n in reversed(order):
        if any(c in compute or c in above for c in graph.successors(n)):
            above.add(n)
    return ([n for n in order if n in compute and n not in below],
            [n for n in order if n in compute and n not in above])
