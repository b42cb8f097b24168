"""Shared helpers of the search tests: a tiny residual workload built by hand (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dse.search.accuracy import ProxyAccuracy
from workloads.graph import Layer, Workload


def _conv(name: str, c: int, k: int, hw: int, *, r: int = 3, stride: int = 1, role: str = "",
          bits: int = 2) -> Layer:
    ho = hw // stride
    pad = r // 2
    return Layer(name=name, op="conv", n=1, c=c, h=hw, w=hw, k=k, r=r, s=r,
                 stride=(stride, stride), padding=(pad, pad), ho=ho, wo=ho,
                 macs=c * k * r * r * ho * ho, w_bits=bits, a_bits=bits, o_bits=16,
                 weight_elems=c * k * r * r, input_elems=c * hw * hw, output_elems=k * ho * ho,
                 module=name, role=role)


def _mem(name: str, op: str, k: int, hw: int, *, c: int | None = None, bits: int = 2) -> Layer:
    c = k if c is None else c
    return Layer(name=name, op=op, n=1, c=c, h=hw, w=hw, k=k, ho=hw, wo=hw, a_bits=bits,
                 o_bits=bits, input_elems=c * hw * hw, output_elems=k * hw * hw, module=name)


def tiny_resnet() -> Workload:
    """input -> c1(first, 16b) -> act1 -> c2 -> act2 -> c3 --(+ shortcut 1x1)--> add -> act3
    -> pool -> fc(last, 16b) -> output: 5 compute layers, one of each role."""
    layers = [
        Layer(name="input", op="input", n=1, k=3, ho=16, wo=16, o_bits=8, output_elems=768),
        _conv("c1", 3, 16, 16, role="first", bits=16),
        _mem("act1", "act", 16, 16),
        _conv("c2", 16, 32, 16, stride=2),
        _mem("act2", "act", 32, 8),
        _conv("c3", 32, 32, 8),
        _conv("sc", 16, 32, 16, r=1, stride=2, role="shortcut", bits=16),
        _mem("add", "add", 32, 8, bits=16),
        _mem("act3", "act", 32, 8),
        Layer(name="pool", op="pool", n=1, c=32, h=8, w=8, k=32, ho=1, wo=1, vector_ops=2048,
              a_bits=2, o_bits=2, input_elems=2048, output_elems=32, module="pool"),
        Layer(name="fc", op="linear", n=1, c=32, k=10, macs=320, w_bits=16, a_bits=16, o_bits=16,
              weight_elems=320, input_elems=32, output_elems=10, module="fc", role="last"),
        Layer(name="output", op="output", n=1, k=10, input_elems=10),
    ]
    edges = [("input", "c1"), ("c1", "act1"), ("act1", "c2"), ("c2", "act2"), ("act2", "c3"),
             ("act1", "sc"), ("c3", "add"), ("sc", "add"), ("add", "act3"), ("act3", "pool"),
             ("pool", "fc"), ("fc", "output")]
    return Workload.from_layers(layers, edges, name="tiny_resnet", input_shape=(3, 16, 16))


def tiny_proxy(wl: Workload) -> ProxyAccuracy:
    """Proxy over standard-normal weights (uniform sensitivity)."""
    rng = np.random.default_rng(0)
    weights = {la.name: rng.standard_normal(la.weight_elems) for la in wl.compute_layers()}
    return ProxyAccuracy.from_weights(weights)


def seed_cache(out: Path, model: str = "tiny_resnet") -> None:
    """Cache `tiny_resnet` and its proxy in a search's ``--out`` as ``model`` (pre-extracted, as
    `dse.search.workload.prepare_workload` caches them): the CLI then needs no torch."""
    out.mkdir(parents=True, exist_ok=True)
    wl = tiny_resnet()
    wl.save(out / "workload.json")
    (out / "accuracy.json").write_text(json.dumps(tiny_proxy(wl).to_dict()))
    (out / "source.json").write_text(json.dumps({
        "model": model, "recipe": "pact_sawb", "w_bits": 2, "a_bits": 2, "batch": 1,
        "sensitivity": "noise_gain", "seed": 0}))
