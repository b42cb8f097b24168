"""SCALE-Sim topology files <-> `Workload`.

SCALE-Sim (Samajdar et al., ISPASS 2020) describes a network as a CSV of layers, one header line,
each row ending in a comma. Two formats, as its ``topologies`` reader parses them:

* **conv**: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` (an optional ``Sparsity`` column ``N:M`` follows). The IFMAP size
  includes the padding: the output is ``(H - R) // stride + 1``. A layer whose name contains
  ``DP`` is depthwise: SCALE-Sim runs it as one single-channel layer per channel, each with
  ``Num Filter`` filters; qdse reads it as one conv of ``groups = Channels``.
* **gemm**: ``Layer, M, N, K,``: an (M x K) by (K x N) product, read as a ``linear`` op of M rows.

`from_scalesim` chains the layers in file order (SCALE-Sim runs them one after another); every
tensor is stored at ``default_bits`` (8: SCALE-Sim's words are bytes). `to_scalesim` writes
a workload's compute layers back (other ops have no SCALE-Sim counterpart). Both GEMM views agree:
``Layer.gemm_m/gemm_n/gemm_k`` equal SCALE-Sim's M (output pixels), N (filters), K (R*S*C).
"""

from __future__ import annotations

import logging
from pathlib import Path

from workloads.atomic import atomic_write_text
from workloads.graph import Layer, Workload

__all__ = ["CONV_HEADER", "GEMM_HEADER", "from_scalesim", "to_scalesim"]

log = logging.getLogger(__name__)

CONV_HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
               "Channels", "Num Filter", "Strides")
GEMM_HEADER = ("Layer", "M", "N", "K")
FORMATS = ("conv", "gemm")


def _fields(line: str) -> list[str]:
    """Comma-separated fields with SCALE-Sim's trailing comma (and blanks) dropped."""
    parts = [p.strip() for p in line.strip().split(",")]
    while parts and not parts[-1]:
        parts.pop()
    return parts


def from_scalesim(topology_csv: str | Path, *, format: str | None = None,
                  default_bits: int = 8, name: str = "") -> Workload:
    """Read a SCALE-Sim topology CSV (``format`` "conv" or "gemm"; None: from the header).

    Returns a chain of ``conv`` (conv format) or ``linear`` (gemm format) layers at batch 1, in
    file order, every tensor at ``default_bits``. Raises ValueError naming the file, the line,
    the column and what is allowed.
    """
    from workloads.protocol import check_bits  # here: protocol imports torch, writing needs none

    path = Path(topology_csv)
    check_bits(default_bits, "default_bits")
    if format is not None and format not in FORMATS:
        raise ValueError(f"format={format!r} is invalid; expected one of {', '.join(FORMATS)} "
                         "or None (from the header)")
    if not path.is_file():
        raise ValueError(f"topology_csv={str(path)!r}: no such file; expected a SCALE-Sim "
                         "topology CSV")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"topology_csv={str(path)!r} is not a text file ({e.reason} at byte "
                         f"{e.start}); expected a SCALE-Sim topology CSV") from e
    rows = [(i, _fields(line)) for i, line in enumerate(lines, start=1) if line.strip()]
    if len(rows) < 2:
        raise ValueError(f"topology_csv={str(path)!r} has no layers; expected a header line "
                         "and one line per layer")
    header = rows[0][1]
    if format is None:
        format = "gemm" if [h.upper() for h in header[1:4]] == ["M", "N", "K"] else "conv"
    want = CONV_HEADER if format == "conv" else GEMM_HEADER
    layers: list[Layer] = []
    seen: set[str] = set()
    for lineno, f in rows[1:]:
        where = f"topology_csv={str(path)!r} line {lineno}"
        if len(f) not in (len(want), len(want) + 1):
            raise ValueError(f"{where}: {len(f)} fields; the {format} format has "
                             f"{', '.join(want)} (and an optional Sparsity)")
        values = []
        for col, text in zip(want[1:], f[1:len(want)]):
            try:
                v = int(text)
            except ValueError:
                v = 0
            if v < 1:
                raise ValueError(f"{where}: {col}={text!r} is invalid; expected an integer >= 1")
            values.append(v)
        layer_name = f[0] or f"layer{len(layers)}"
        while layer_name in seen:
            layer_name += "_"
        seen.add(layer_name)
        layer = (_conv(layer_name, values, default_bits, where) if format == "conv"
                 else _gemm(layer_name, values, default_bits))
        if len(f) > len(want) and f[-1] not in ("", "1:1"):
            layer.meta["sparsity"] = f[-1]
            log.warning("%s: sparsity %s is not modelled; the layer is simulated dense", where,
                        f[-1])
        layers.append(layer)
    first = layers[0]
    return Workload.from_layers(layers, name=name or path.stem, batch=1,
                                input_shape=(first.c, first.h, first.w))


def _conv(name: str, v: list[int], bits: int, where: str) -> Layer:
    h, w, r, s, c, filters, stride = v
    if r > h or s > w:
        raise ValueError(f"{where}: filter {r}x{s} is larger than the IFMAP {h}x{w}; expected "
                         "Filter Height <= IFMAP Height and Filter Width <= IFMAP Width")
    ho, wo = -(-(h - r + stride) // stride), -(-(w - s + stride) // stride)   # SCALE-Sim's rule
    groups = c if "DP" in name else 1          # SCALE-Sim's depthwise marker
    k = filters * groups
    macs = ho * wo * k * (c // groups) * r * s
    return Layer(name=name, op="conv", n=1, c=c, h=h, w=w, k=k, r=r, s=s, stride=(stride, stride),
                 groups=groups, ho=ho, wo=wo, macs=macs, w_bits=bits, a_bits=bits, o_bits=bits,
                 weight_elems=r * s * (c // groups) * k, input_elems=c * h * w,
                 output_elems=k * ho * wo)


def _gemm(name: str, v: list[int], bits: int) -> Layer:
    m, n, k = v
    return Layer(name=name, op="linear", n=1, c=k, h=m, w=1, k=n, ho=m, wo=1, macs=m * n * k,
                 w_bits=bits, a_bits=bits, o_bits=bits, weight_elems=k * n, input_elems=m * k,
                 output_elems=m * n)


def _safe_name(name: str, depthwise: bool) -> str:
    """A name SCALE-Sim reads back as it is meant: no commas, 'DP' only on depthwise layers."""
    name = name.replace(",", ";")
    if not depthwise:
        name = name.replace("DP", "Dp")
    return name


def to_scalesim(workload: Workload, path: str | Path, *, format: str = "conv") -> Path:
    """Write the compute layers of ``workload`` as a SCALE-Sim topology; return the path.

    ``format="conv"``: a conv (batch 1, the same stride in H and W, no dilation) is a row whose
    IFMAP is the padded input rows its windows read, ``(Ho - 1) * stride + R`` (so SCALE-Sim's
    output-size rule gives ``Ho`` back); a depthwise conv a ``DP`` row; another grouped conv one
    row per group (``name:g0``, ...); a linear or matmul of M rows an M x 1 IFMAP read by 1x1
    filters.
    ``format="gemm"``: one ``M, N, K`` row per GEMM (per group), exact for every layer and any
    batch. A layer the conv format cannot express raises ValueError naming it and the fix.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is invalid; expected one of {', '.join(FORMATS)}")
    lines = [", ".join(CONV_HEADER if format == "conv" else GEMM_HEADER) + ","]
    for la in workload.compute_layers():
        groups = max(la.groups, 1)
        depthwise = la.op == "conv" and groups > 1 and groups == la.c
        base = _safe_name(la.name, depthwise)
        if format == "gemm":
            names = [base] if groups == 1 else [f"{base}:g{g}" for g in range(groups)]
            lines += [f"{n}, {la.gemm_m}, {la.gemm_n}, {la.gemm_k}," for n in names]
            continue
        if la.op != "conv":          # linear / matmul: M rows through 1x1 filters
            lines.append(f"{base}, {la.gemm_m}, 1, 1, 1, {la.gemm_k}, {la.gemm_n}, 1,")
            continue
        _check_conv(la)
        h, w = (la.ho - 1) * la.stride[0] + la.r, (la.wo - 1) * la.stride[1] + la.s
        row = f"{h}, {w}, {la.r}, {la.s}"
        if depthwise:
            lines.append(f"{base} DP, {row}, {la.c}, {la.k // la.c}, {la.stride[0]},")
        elif groups == 1:
            lines.append(f"{base}, {row}, {la.c}, {la.k}, {la.stride[0]},")
        else:
            lines += [f"{base}:g{g}, {row}, {la.c // groups}, {la.k // groups}, {la.stride[0]},"
                      for g in range(groups)]
    return atomic_write_text(path, "\n".join(lines) + "\n")  # never a half-written topology


def _check_conv(la: Layer) -> None:
    """The conv format's limits: batch 1, one stride for H and W, no dilation."""
    problem = ""
    if la.n != 1:
        problem = f"batch n={la.n}; SCALE-Sim's conv topology has no batch"
    elif la.stride[0] != la.stride[1]:
        problem = f"stride={la.stride}; SCALE-Sim has one stride for H and W"
    elif la.meta.get("dilation"):
        problem = f"dilation={la.meta['dilation']}; SCALE-Sim has no dilated convolutions"
    if problem:
        raise ValueError(f"layer {la.name!r} cannot be written in the conv format: {problem}. "
                         "Fix: to_scalesim(..., format='gemm') writes its exact GEMM view")
