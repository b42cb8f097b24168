"""Workload builders for the simulator tests: hand-built graphs from SCALE-Sim's layer tables.

Test modules import these as ``from test_sim_helpers import ...`` (a name unique across the test
tree: several test folders have a ``conftest.py``, so ``from conftest import`` is ambiguous when
the whole suite runs). This module holds no tests.

The SCALE-Sim reference CSVs (../shared/reference/scalesim/) list every conv/FC layer of AlexNet and
ResNet-50 with pre-padded input sizes; `scalesim_layers` turns them into `workloads.graph.Layer`s,
and `resnet50_graph` wires ResNet-50's real topology (bottleneck blocks, projection shortcuts,
residual adds, max/avg pool) around them. Importing this module never imports torch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from workloads.graph import Layer, Workload

SCALESIM_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "scalesim"
if not SCALESIM_DIR.is_dir():  # the checkout lives in /work/main, the shared folder beside it
    SCALESIM_DIR = Path("/work/shared/reference/scalesim")


def scalesim_table(net: str, dataflow: str) -> pd.DataFrame:
    return pd.read_csv(SCALESIM_DIR / f"{net}_8x64_{dataflow}.csv")


def conv_layer(name: str, *, c: int, h: int, w: int, k: int, r: int, stride: int = 1,
               ho: int | None = None, wo: int | None = None, n: int = 1, groups: int = 1,
               bits: tuple[int, int] = (16, 16), o_bits: int | None = None,
               op: str = "conv", role: str = "") -> Layer:
    """A convolution on a pre-padded h x w input (padding 0), SCALE-Sim style."""
    ho = ho if ho is not None else (h - r) // stride + 1
    wo = wo if wo is not None else (w - r) // stride + 1
    wb, ab = bits
    macs = n * ho * wo * k * r * r * (c // groups)
    return Layer(name=name, op=op, n=n, c=c, h=h, w=w, k=k, r=r, s=r, stride=(stride, stride),
                 groups=groups, ho=ho, wo=wo, macs=macs, w_bits=wb, a_bits=ab,
                 o_bits=o_bits if o_bits is not None else ab,
                 weight_elems=k * (c // groups) * r * r, input_elems=n * c * h * w,
                 output_elems=n * k * ho * wo, role=role)


def scalesim_layers(net: str, dataflow: str = "os", bits: tuple[int, int] = (16, 16),
                    n: int = 1) -> list[Layer]:
    out = []
    for row in scalesim_table(net, dataflow).itertuples(index=False):
        op = "linear" if row.kind == "fc" else "conv"
        out.append(conv_layer(row.layer, c=int(row.channels), h=int(row.ifmap_h),
                              w=int(row.ifmap_w), k=int(row.num_filt), r=int(row.filt_h),
                              stride=int(row.stride), ho=int(row.ofmap_h), wo=int(row.ofmap_w),
                              bits=bits, op=op, n=n))
    return out


def memory_op(name: str, op: str, *, c: int, h: int, w: int, ho: int, wo: int, n: int = 1,
              bits: int = 16, inputs: int = 1, vector_ops: int = 0) -> Layer:
    return Layer(name=name, op=op, n=n, c=c, h=h, w=w, k=c, ho=ho, wo=wo, a_bits=bits,
                 w_bits=bits, o_bits=bits, input_elems=inputs * n * c * h * w,
                 output_elems=n * c * ho * wo, vector_ops=vector_ops)


def resnet50_graph(bits: tuple[int, int] = (16, 16), first_last: tuple[int, int] | None = None,
                   n: int = 1) -> Workload:
    """ResNet-50 (v1.5, stride on the 3x3) as a workload graph built from SCALE-Sim's layer table.

    ``bits``: (w, a) of the inner layers; ``first_last``: (w, a) of conv1 and fc (default: bits).
    Block outputs (residual adds) carry the activation bits; fc is fed by a global average pool.
    """
    fl = first_last or bits
    base = {la.name: la for la in scalesim_layers("resnet50", "os")}
    layers: list[Layer] = []
    edges: list[tuple[str, str]] = []
    a = bits[1]

    def conv(name: str, b: tuple[int, int], o_bits: int, role: str = "") -> str:
        la = base[name]
        layers.append(conv_layer(name, c=la.c, h=la.h, w=la.w, k=la.k, r=la.r,
                                 stride=la.stride[0], ho=la.ho, wo=la.wo, bits=b, n=n,
                                 o_bits=o_bits, op=la.op, role=role))
        return name

    layers.append(Layer(name="input", op="input", n=n, c=3, h=224, w=224, k=3, ho=224, wo=224,
                        a_bits=fl[1], o_bits=fl[1], input_elems=n * 3 * 224 * 224,
                        output_elems=n * 3 * 224 * 224))
    edges.append(("input", conv("conv1", fl, a, role="first")))
    layers.append(memory_op("pool1", "pool", c=64, h=112, w=112, ho=56, wo=56, n=n, bits=a,
                            vector_ops=n * 64 * 56 * 56 * 9))
    edges.append(("conv1", "pool1"))
    prev = "pool1"
    blocks = sorted({m.group(1) for m in (re.match(r"(res\d[a-f])_", k) for k in base) if m})
    for blk in blocks:
        a1 = conv(f"{blk}_1x1a", bits, a)
        b3 = conv(f"{blk}_3x3", bits, a)
        c1 = conv(f"{blk}_1x1b", bits, a)
        edges += [(prev, a1), (a1, b3), (b3, c1)]
        out = base[f"{blk}_1x1b"]
        add = f"{blk}_add"
        layers.append(memory_op(add, "add", c=out.k, h=out.ho, w=out.wo, ho=out.ho, wo=out.wo,
                                n=n, bits=a, inputs=2, vector_ops=n * out.k * out.ho * out.wo))
        edges.append((c1, add))
        if f"{blk}_proj" in base:
            pj = conv(f"{blk}_proj", bits, a, role="shortcut")
            edges += [(prev, pj), (pj, add)]
        else:
            edges.append((prev, add))
        prev = add
    layers.append(memory_op("avgpool", "pool", c=2048, h=7, w=7, ho=1, wo=1, n=n, bits=a,
                            vector_ops=n * 2048 * 49))
    edges.append((prev, "avgpool"))
    edges.append(("avgpool", conv("fc1000", fl, fl[1], role="last")))
    layers.append(Layer(name="output", op="output", n=n, c=1000, k=1000, a_bits=fl[1],
                        o_bits=fl[1], input_elems=n * 1000))
    edges.append(("fc1000", "output"))
    return Workload.from_layers(layers, edges, name="resnet50", batch=n,
                                input_shape=(3, 224, 224))


def alexnet_graph(bits: tuple[int, int] = (16, 16), first_last: tuple[int, int] | None = None,
                  n: int = 1, width: int = 1) -> Workload:
    """AlexNet (SCALE-Sim's table) as a chain input -> conv1..conv5 -> fc6..fc8 -> output, with the
    inner layers' channels multiplied by ``width`` (WRPN-style widening)."""
    fl = first_last or bits
    rows = scalesim_layers("alexnet", "os")
    layers = [Layer(name="input", op="input", n=n, c=3, h=227, w=227, k=3, ho=227, wo=227,
                    a_bits=fl[1], o_bits=fl[1], input_elems=n * 3 * 227 * 227,
                    output_elems=n * 3 * 227 * 227)]
    last = len(rows) - 1
    for i, la in enumerate(rows):
        b = fl if i in (0, last) else bits
        c = la.c * (width if i > 0 else 1)
        k = la.k * (width if i < last else 1)
        layers.append(conv_layer(la.name, c=c, h=la.h, w=la.w, k=k, r=la.r, stride=la.stride[0],
                                 ho=la.ho, wo=la.wo, bits=b, n=n, op=la.op,
                                 o_bits=bits[1] if i < last else fl[1]))
    layers.append(Layer(name="output", op="output", n=n, c=1000, k=1000, input_elems=n * 1000))
    return Workload.from_layers(layers, name="alexnet", batch=n, input_shape=(3, 227, 227))
