"""Binary-weight speedup on ResNet-18: the CReLU paper's Eq. 11 beside a simulated one (TARGETS 4).

Paper: Huang, Ni, Yang, "Efficient Quantization for Neural Networks with Binary Weights and Low
Bitwidth Activations" (AAAI 2019), Eq. 11: with m-level binary weights and 1-bit activations a
conv layer of N = c_out*c_in*w*h*w_out*h_out FLOPs costs m*N/64 + m*w_out*h_out (64 binary ops
per CPU word, plus the scaling ops), so

    s = N / (m*N/64 + m*w_out*h_out)                                   (Eq. 11)

ResNet-18: 1.81e9 FLOPs full precision -> 1.67e8, s = 10.86x. The network total is computed here
from the workload graph's layers: layers listed in ``fp_roles`` (first conv, last FC and - as in
the XNOR-Net/Bi-Real accounting the 1.67e8 follows - the 1x1 projection shortcuts) stay at full
precision and cost N.

Beside it: the simulated images/s of the binary-weight network (``recipe`` at W1A``a_bits``, the
``fp_roles`` layers at 16 bits) on an iso-area ``mac_bits`` design that executes the 16-bit layers
bit-serially (or with a precision-configurable MAC), over the 16-bit network on the 16-bit system.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd

from dse.study.report import Summary, Target
from dse.study.runner import Context, expand_grid
from dse.study.runner import run as _run
from studies import pipeline
from studies._params import (
    check_bandwidths,
    check_batch,
    check_choice,
    check_int,
    check_tuple_of,
    describe_params,
)

NAME = "binary_speedup"
TITLE = "Binary-weight ResNet-18: Eq. 11 theoretical speedup (10.86x) vs. a simulated design"

PARAMS: dict[str, Any] = {
    "model": "resnet18",
    "m": (1,),
    "word_bits": 64,
    "fp_roles": ("first", "last", "shortcut"),
    "recipe": "crelu_binary",
    "a_bits": 1,
    "mac_bits": (1, 1),
    "bandwidth": (math.inf, 32.0),
    "batch": pipeline.DEFAULT_BATCH,
    "high_precision": ("bit_serial", "configurable"),
    "peak_scaling": "density",
    "preset": "sysml19",
}

PAPER_MODEL = "resnet18"
"""The network of the paper's numbers (Eq. 11's 10.86x): another model gets no paper target."""
PAPER_FLOPS_FP = 1.81e9
PAPER_FLOPS_BIN = 1.67e8
PAPER_SPEEDUP = 10.86
SOURCE = "CReLU binary weights (AAAI'19) Eq. 11 and text below it"


def eq11(layers: list[dict[str, Any]], *, m: int = 1, word_bits: int = 64,
         fp_roles: tuple[str, ...] = ("first", "last", "shortcut")) -> dict[str, float]:
    """Eq. 11 over a network: total full-precision FLOPs, binary-network FLOPs, their ratio.

    ``layers``: per-image records with ``macs`` (N: one multiply-add counted as one FLOP, as the
    paper does), ``ho``, ``wo`` and ``role``. Layers whose role is in ``fp_roles`` keep cost N.
    """
    if m < 1 or word_bits < 1:
        raise ValueError(f"m={m!r}, word_bits={word_bits!r} are not allowed; expected >= 1")
    fp = sum(float(r["macs"]) for r in layers)
    binary = 0.0
    for r in layers:
        n = float(r["macs"])
        binary += n if r["role"] in fp_roles else m * n / word_bits + m * r["ho"] * r["wo"]
    return {"flops_fp": fp, "flops_binary": binary, "speedup": fp / binary if binary else math.inf}


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    pipeline.check_model(params["model"])
    pipeline.check_recipe(params["recipe"])
    ms = check_tuple_of("m", params["m"], ())
    for m in ms:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"m={m!r} is not allowed; expected an integer >= 1")
    roles = check_tuple_of("fp_roles", params["fp_roles"], ("first", "last", "shortcut"))
    hps = check_tuple_of("high_precision", params["high_precision"], ("bit_serial",
                                                                      "configurable"))
    check_choice("peak_scaling", params["peak_scaling"], ("density", "doubling"))
    pipeline.check_preset(params["preset"])
    for field, hi in (("word_bits", 4096), ("a_bits", 32)):
        check_int(field, params[field], 1, hi)
    common = {"model": params["model"], "batch": check_batch(params["batch"]),
              "preset": params["preset"], "peak_scaling": params["peak_scaling"]}
    points = [{**common, "kind": "eq11", "m": m, "fp_roles": ",".join(r),
               "word_bits": params["word_bits"]}
              for m in ms for r in dict.fromkeys([roles, ("first", "last")])]
    bws = check_bandwidths(params["bandwidth"])
    w, a = _mac_pair(params["mac_bits"])
    points += expand_grid({"dram_gbps": bws, "high_precision": hps},
                          **common, kind="sim", scheme="binary", recipe=params["recipe"],
                          a_bits=params["a_bits"], mac_w_bits=w, mac_a_bits=a,
                          fp_roles=",".join(roles))
    points += expand_grid({"dram_gbps": bws}, **common, kind="sim", scheme="16-bit",
                          recipe="fp32", high_precision="configurable")
    return points


def _mac_pair(v: Any) -> tuple[int, int]:
    if (isinstance(v, tuple | list) and len(v) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in v)):
        return int(v[0]), int(v[1])
    raise ValueError(f"mac_bits={v!r} is not allowed; expected (w_bits, a_bits) >= 1")


def evaluate(point: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    if point["kind"] == "eq11":
        wl = pipeline.workload_for(point["model"], "fp32", w_bits=16, a_bits=16,
                                   cache_dir=ctx.cache_dir)
        per_image = [{"macs": lay.macs / lay.n, "ho": lay.ho, "wo": lay.wo, "role": lay.role}
                     for lay in wl.compute_layers()]
        return [eq11(per_image, m=point["m"], word_bits=point["word_bits"],
                     fp_roles=tuple(point["fp_roles"].split(",")))]
    if point["scheme"] == "16-bit":
        wl = pipeline.workload_for(point["model"], "fp32", w_bits=16, a_bits=16,
                                   cache_dir=ctx.cache_dir)
        mac = (16, 16)
    else:
        roles = point["fp_roles"].split(",")
        wl = pipeline.workload_for(point["model"], point["recipe"], w_bits=1,
                                   a_bits=point["a_bits"], first_last_bits=16,
                                   shortcut_bits=16 if "shortcut" in roles else None,
                                   cache_dir=ctx.cache_dir)
        mac = (point["mac_w_bits"], point["mac_a_bits"])
    acc = pipeline.accelerator(mac, point["dram_gbps"], preset=point["preset"],
                               peak_scaling=point["peak_scaling"],
                               high_precision=point["high_precision"])
    return [pipeline.simulate_row(wl, acc, batch=point["batch"], other_modes=True)]


def summarize(results: pd.DataFrame, params: dict[str, Any]) -> Summary:
    eq = results[results["kind"] == "eq11"][["m", "fp_roles", "flops_fp", "flops_binary",
                                             "speedup"]].reset_index(drop=True)
    roles = ",".join(check_tuple_of("fp_roles", params["fp_roles"], ()))
    head = eq[(eq["m"] == 1) & (eq["fp_roles"] == roles)]
    targets = []
    if len(head) and params["model"] == PAPER_MODEL:  # the paper's numbers are ResNet-18's
        r = head.iloc[0]
        targets = [
            Target("ResNet-18 full-precision FLOPs", float(r["flops_fp"]), 0.97 * PAPER_FLOPS_FP,
                   1.03 * PAPER_FLOPS_FP, paper="1.81e9", source=SOURCE),
            Target("binary-weight FLOPs (Eq. 11)", float(r["flops_binary"]),
                   0.95 * PAPER_FLOPS_BIN, 1.05 * PAPER_FLOPS_BIN, paper="1.67e8", source=SOURCE),
            Target("Eq. 11 speedup, m=1", float(r["speedup"]), 0.95 * PAPER_SPEEDUP,
                   1.05 * PAPER_SPEEDUP, paper="10.86x", source=SOURCE, unit="x"),
        ]
    sim = results[results["kind"] == "sim"]
    base = sim[sim["scheme"] == "16-bit"].set_index("dram_gbps")["images_per_s"]
    binary = sim[sim["scheme"] == "binary"]
    simt = binary.assign(baseline_images_per_s=base.loc[binary["dram_gbps"]].to_numpy())
    simt = simt.assign(speedup=simt["images_per_s"] / simt["baseline_images_per_s"])
    base_rows = sim[sim["scheme"] == "16-bit"].set_index("dram_gbps")
    labelled = simt.assign(design=[
        f"{r.high_precision}, {pipeline.bandwidth_label(r.dram_gbps)}"
        for r in simt.itertuples()])
    modes = pipeline.mode_columns(labelled, "design", lambda r, col: base_rows.loc[
        r["dram_gbps"], col].to_numpy() / r[col])
    simt = simt[["dram_gbps", "high_precision", "cores", "peak_tops", "images_per_s",
                 "baseline_images_per_s", "speedup", "utilization"]].reset_index(drop=True)
    def fmt(r: Any) -> str:
        return (f"{r.speedup:.2f}x with `{r.high_precision}` at "
                f"{pipeline.bandwidth_label(r.dram_gbps)}")

    sim_line = ("Simulated: " + "; ".join(fmt(r) for r in simt.itertuples()) + ".\n\n"
                if len(simt) else "")
    notes = (
        "## Why the two numbers differ\n\n" + sim_line +
        "Eq. 11 is a CPU operation count: one full-precision FLOP = 64 binary ops in one cycle, "
        "memory ignored. The simulated design is an iso-area accelerator: its speedup is the MAC "
        "density gain of the binary array, diluted by the full-precision layers (first conv, last "
        "FC, projection shortcuts) whose cost depends on the high-precision model - bit-serial "
        f"composition needs ceil(16/{params['mac_bits'][0]})*ceil(16/{params['mac_bits'][1]}) "
        "passes per MAC, a configurable MAC runs them at its iso-area 16-bit throughput - and by "
        "DRAM traffic at limited bandwidth.")
    if params["model"] != PAPER_MODEL:
        notes += (f"\n\nThe paper's numbers (1.81e9 and 1.67e8 FLOPs, 10.86x) are ResNet-18's; "
                  f"this run's model is `{params['model']}`, so no paper target is checked.")
    net = "ResNet-18" if params["model"] == PAPER_MODEL else params["model"]
    return Summary(
        title=f"Binary-weight {net} speedup (TARGETS 4, CReLU paper Eq. 11)",
        intro="Eq. 11 evaluated on the workload graph's layers, and a simulated bit-serial-capable "
              "design. " + describe_params(params),
        targets=tuple(targets),
        tables={"eq11": eq, "simulated": simt,
                **({"speedup_by_fidelity": modes} if modes is not None else {})},
        notes=notes + ("\n\n" + pipeline.fidelity_note(modes, "the simulated speedup")
                       if modes is not None else ""),
        headline=("simulated",),
    )


def run(**kw: Any) -> pd.DataFrame:
    """`python -m dse.study binary_speedup` from Python (see dse.study.runner.run)."""
    return _run(sys.modules[__name__], **kw)
