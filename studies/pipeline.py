"""The pipeline every simulating study runs, written down in one place.

    zoo model --quant.quantize(recipe, bits)--> quantized model --workloads.extract--> Workload
    --dse.simulate(workload, arch.presets.<preset>(mac_bits, dram_gbps, ...))--> SimResult -> row

Extracted workloads are cached as JSON (``Workload.save``) under the runner's artefact folder, keyed
by everything that decides them, so the 14-56 points of a study trace each model once. torch is
imported only when a workload has to be traced (cache hits and the simulator never need it).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from arch import Accelerator
    from dse import SimResult
    from workloads.graph import Workload

__all__ = [
    "DEFAULT_BATCH",
    "HEADLINE_MODE",
    "SIM_MODES",
    "accelerator",
    "array_utilization",
    "bandwidth_label",
    "check_model",
    "check_preset",
    "check_recipe",
    "design_file_accelerator",
    "fidelity_note",
    "fidelity_table",
    "is_design_file",
    "layer_bits_summary",
    "mode_columns",
    "preset_defaults",
    "preset_names",
    "sim_options",
    "simulate_point",
    "simulate_row",
    "workload_for",
]

log = logging.getLogger(__name__)

SIM_MODES = ("layer+prefetch", "layer", "tile+prefetch", "tile")
"""How a study point is simulated: `dse.simulate`'s ``fidelity`` ("layer" | "tile") with or
without cross-layer ``prefetch``. Every study runs its headline at `HEADLINE_MODE` and shows the
headline number under the other modes beside it (docs/simulator.md, "Which fidelity")."""
HEADLINE_MODE = "layer+prefetch"
"""Layer fidelity with prefetch: a few hundred events per design point, so the studies and
searches stay fast; prefetch because the hardware the papers describe loads the next layer's
weights while the current one runs. Tile fidelity moves the headlines by a few percent at most,
as each study's mode table shows (``speedup_by_fidelity``, ``gops_by_fidelity``,
``time_by_fidelity``, ``throughput_by_fidelity``; docs/simulator.md lists them)."""


def fidelity_table(rows: Any, value: str, index: str = "dram_gbps") -> Any:
    """``value`` by ``index`` (rows) and simulator mode (columns, in `SIM_MODES` order), or None
    when ``rows`` hold one mode only."""
    import pandas as pd

    if "mode" not in rows or rows["mode"].nunique() < 2:
        return None
    t = rows.pivot_table(index=index, columns="mode", values=value, aggfunc="first")
    t = t[[m for m in SIM_MODES if m in t.columns]]
    out: pd.DataFrame = t.reset_index()
    out.columns.name = None
    return out


def fidelity_note(table: Any, value: str, name: str = "speedup_by_fidelity") -> str:
    """Markdown: how the headline ``value`` moves between simulator modes, and why (``name``:
    the summary's table the note is about)."""
    if table is None:
        return ""
    head = table[HEADLINE_MODE]
    parts = []
    for mode in SIM_MODES:
        if mode in table and mode != HEADLINE_MODE:
            d = (table[mode] / head - 1) * 100
            low, high = (_percent(d.min()), _percent(d.max()))
            parts.append(f"`{mode}` {low}" if low == high else f"`{mode}` {low} to {high}")
    return (f"**Simulator fidelity** (`{name}`; the headline runs at "
            f"`{HEADLINE_MODE}`): against it, {value} moves by " + ", ".join(parts) + ". "
            "Prefetch loads each layer's weights while earlier layers run, as far as the SRAM "
            "allows, into DRAM time those layers leave idle: it helps most where compute-bound "
            "layers sit before weight-heavy memory-bound ones. Tile fidelity plays each core "
            "class's tiles as events (first fill, per-tile DRAM contention, output drains, "
            "buffer back-pressure), which the lock-step layer pipeline averages out.")


def _percent(x: float) -> str:
    """``x`` as a signed percentage to 0.1; a change that rounds to zero reads ``+0.0%``, never
    ``-0.0%``."""
    return f"{round(float(x), 1) + 0.0:+.1f}%"


def mode_columns(results: Any, index: str, value: Any) -> Any:
    """A ``by_fidelity`` table from ``latency_s@MODE`` columns (`simulate_row`'s
    ``other_modes``): one row per ``index`` value, one column per mode, each cell
    ``value(results, mode_latency_column)``; None without such columns."""
    import pandas as pd

    cols = [m for m in SIM_MODES if f"latency_s@{m}" in results]
    if len(cols) < 2:
        return None
    out = pd.DataFrame({index: results[index].to_numpy()})
    for m in cols:
        out[m] = value(results, f"latency_s@{m}").to_numpy()
    return out


def bandwidth_label(gbps: float, unlimited: str = "unlimited") -> str:
    """A DRAM bandwidth as the reports write it: ``unlimited`` for inf, else ``'32 GB/s'``."""
    return unlimited if math.isinf(gbps) else f"{gbps:g} GB/s"


def sim_options(mode: str, field: str = "mode") -> dict[str, Any]:
    """``dse.simulate`` options of a `SIM_MODES` name."""
    if mode not in SIM_MODES:
        raise ValueError(f"{field}={mode!r} is not allowed; expected one of "
                         f"{', '.join(SIM_MODES)}")
    fidelity, _, extra = mode.partition("+")
    return {"fidelity": fidelity, "prefetch": extra == "prefetch"}

_MEMO: dict[str, Workload] = {}

DEFAULT_BATCH = 8
"""Images per inference batch of every simulating study unless told otherwise.

The papers report throughput (images/s) and do not state a batch. Batch 8 is chosen once, for all
studies, for a physical reason: the PACT-SAWB paper's claim of a near-linear gain up to 4 bits at
unlimited bandwidth (Sec. 7.2) needs ResNet-50 to fill 32 cores of 8x64 MACs, and at batch 1 its
7x7 late layers give each core few output pixels and channels (with the simulator's mapping the
32-core 4-bit system then reaches 68% utilization vs. 79% for the 8-core 16-bit one: 16->4 bits
gives 3.42x; at batch 8, 78% vs. 83% and 3.75x). Both studies report their bands at this batch
and show batch 1 beside it (`--batch` changes it)."""


def check_model(model: str, field: str = "model") -> str:
    """``model`` if the zoo has it, else ValueError listing the zoo."""
    from workloads import zoo

    names = list(zoo.names())
    if model not in names:
        raise ValueError(f"unknown {field} {model!r}; available: {', '.join(names)}")
    return model


def check_recipe(recipe: str, field: str = "recipe") -> str:
    """``recipe`` if quant knows it, else ValueError listing the recipes."""
    import quant

    names = list(quant.recipes())
    if recipe not in names:
        raise ValueError(f"unknown {field} {recipe!r}; available: {', '.join(names)}")
    return recipe


@functools.cache
def _code() -> str:
    """The model code's fingerprint, once per process (it keys the workload cache)."""
    from dse.study.runner import code_fingerprint

    return code_fingerprint()


def _key(**spec: Any) -> str:
    text = json.dumps({**spec, "code": _code()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def workload_for(model: str, recipe: str, *, w_bits: int, a_bits: int,
                 first_last_bits: int | None = None, shortcut_bits: int | None = None,
                 store_bits: int | None = None, width: int = 1, batch: int = 1,
                 cache_dir: Path | None = None) -> Workload:
    """The workload graph of zoo ``model`` (``width`` x channels) quantized by ``recipe``.

    Steps: ``workloads.zoo.get(model, width=width)`` -> ``quant.quantize(model, recipe, w_bits,
    a_bits, first_last_bits, shortcut_bits)`` -> ``workloads.extract(..., batch=batch,
    default_bits=16)``: layers the recipe leaves unquantized (first/last by default) run at 16 bits.

    ``store_bits``: if set, every stored intermediate tensor (``o_bits``) wider than it is stored
    at ``store_bits`` (the network's output excepted). `workloads.extract` stores a tensor at the
    precision its readers need, so the raw values feeding a residual add or a BN stay at 16 bits;
    ``store_bits`` models a datapath that requantizes those too (integer-only inference, LLSQ
    Sec. 3.4), i.e. every data structure at the network's precision.
    """
    from workloads.graph import Workload

    spec: dict[str, Any] = {"model": model, "recipe": recipe, "w_bits": w_bits, "a_bits": a_bits,
            "first_last_bits": first_last_bits, "shortcut_bits": shortcut_bits,
            "store_bits": store_bits, "width": width, "batch": batch}
    key = _key(**spec)
    if key in _MEMO:
        return _MEMO[key]
    path = Path(cache_dir) / "workloads" / f"{model}-{recipe}-{key}.json" if cache_dir else None
    if path is not None and path.exists():
        try:
            wl = Workload.load(path)
            _MEMO[key] = wl
            return wl
        except (OSError, ValueError, KeyError):
            log.warning("unreadable cached workload %s; tracing again", path)
    try:
        wl = _trace(**spec)
    except (RuntimeError, NotImplementedError, ValueError) as err:  # e.g. .item() on meta
        log.info("tracing %s on the meta device failed (%s); retrying on the CPU", model, err)
        wl = _trace(**spec, device="cpu")
    if path is not None:
        from dse.study.report import atomic_write

        atomic_write(path, wl.save)
    _MEMO[key] = wl
    return wl


def _compute_modules(model: Any) -> list[str]:
    import torch.nn as nn

    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _trace(*, model: str, recipe: str, w_bits: int, a_bits: int, first_last_bits: int | None,
           shortcut_bits: int | None, store_bits: int | None = None, width: int, batch: int,
           device: str = "meta") -> Workload:
    """Trace one workload. The recipe's quantizers set the body's bits (the bits protocol); the
    first/last layers (first and last Conv2d/Linear in ``model.modules()`` order, the rule quant
    uses) and the projection shortcuts get ``first_last_bits`` / ``shortcut_bits`` for weights AND
    input activations through `workloads.extract` overrides, because the hardware runs them at
    that precision whatever the recipe's quantizers can represent (SAWB has no 16-bit grid).
    If the recipe cannot quantize the body at ``w_bits``/``a_bits`` (e.g. SAWB above 4 bits),
    the same bits are set by overrides on every conv/linear and the workload name says so.

    The model is built on torch's ``meta`` device: shapes and bits are all a workload needs, and
    AlexNet x2 (226 M parameters) then costs no memory and no initialisation time. If tracing on
    meta fails, it is retried on the CPU (tests check both give the same workload)."""
    import torch

    import quant
    from workloads import extract, zoo

    check_model(model)
    check_recipe(recipe)
    with torch.no_grad(), torch.device(device):
        net = zoo.get(model, width=width)
        layers = _compute_modules(net)
        overrides: dict[str, Any] = {}
        source = "recipe"
        if recipe == "fp32":
            qnet = net
            overrides = {n: (w_bits, a_bits) for n in layers} if (w_bits, a_bits) != (16, 16) \
                else {}
        else:
            try:
                qnet = quant.quantize(net, recipe, w_bits=w_bits, a_bits=a_bits)
            except ValueError as err:
                log.info("recipe %r cannot build W%dA%d (%s); setting the same bits by "
                            "workload overrides", recipe, w_bits, a_bits, err)
                qnet, source = net, "overrides"
                overrides = {n: (w_bits, a_bits) for n in layers}
        if shortcut_bits is not None:
            overrides.update({n: (shortcut_bits, shortcut_bits) for n in layers
                              if "shortcut" in n or "downsample" in n})
        if first_last_bits is not None and layers:
            overrides.update({layers[0]: (first_last_bits, first_last_bits),
                              layers[-1]: (first_last_bits, first_last_bits)})
        name = (f"{model}{'-x' + str(width) if width != 1 else ''}-{recipe}-w{w_bits}a{a_bits}"
                f"{'' if source == 'recipe' else '-bits_by_overrides'}")
        shape = zoo.input_shape(model)
        wl = extract(qnet, input_shape=shape, batch=batch, default_bits=16, overrides=overrides,
                     name=name)
        if store_bits is None:
            return wl
        # second pass: cap every stored tensor at store_bits (extract applies overrides last)
        final = {n for n in wl.topo_order() if "output" in {wl[s].op for s in wl.successors(n)}}
        capped: dict[str, Any] = {}
        for lay in wl:
            if lay.op in ("input", "output") or lay.name in final or lay.o_bits <= store_bits:
                continue
            entry: dict[str, int] = {"o_bits": store_bits}
            if lay.is_compute:
                entry.update(w_bits=lay.w_bits, a_bits=lay.a_bits)
            capped[lay.name] = entry
        if not capped:
            return wl
        return extract(qnet, input_shape=shape, batch=batch, default_bits=16,
                       overrides={**overrides, **capped}, name=f"{name}-store{store_bits}")


def accelerator(mac_bits: tuple[int, int], dram_gbps: float, *, preset: str = "sysml19",
                **overrides: Any) -> Accelerator:
    """``arch.presets.<preset>(mac_bits, dram_gbps, **overrides)``; None overrides dropped.

    ``preset`` may also be a design file (``.toml``/``.yaml``/``.yml``, `arch.io`): see
    `design_file_accelerator`."""
    from arch import presets

    if is_design_file(check_preset(preset)):
        return design_file_accelerator(preset, mac_bits, dram_gbps, **overrides)
    fn = getattr(presets, preset)
    kw = {k: v for k, v in overrides.items() if v is not None}
    accepted = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(kw) - set(accepted))
        if unknown:
            raise ValueError(f"arch.presets.{preset} takes no {', '.join(unknown)}; "
                             f"it takes {', '.join(accepted)}")
    acc: Accelerator = fn(mac_bits=tuple(mac_bits), dram_gbps=float(dram_gbps), **kw)
    return acc


def preset_names() -> list[str]:
    """The `arch.presets` functions a study's ``preset`` may name: those that build a system for
    a MAC precision and a DRAM bandwidth."""
    from arch import presets

    takes = {"mac_bits", "dram_gbps"}
    out = []
    for name in presets.__all__:
        params = inspect.signature(getattr(presets, name)).parameters.values()
        required = {p.name for p in params if p.default is p.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if takes <= {p.name for p in params} and required <= takes:
            out.append(name)
    return out


def check_preset(preset: Any, field: str = "preset") -> str:
    """``preset`` if it names a system of `preset_names` or a design file (.toml/.yaml/.yml,
    read when the point runs), else ValueError naming ``field``, the value and what is allowed."""
    if not is_design_file(preset) and not (isinstance(preset, str)
                                           and preset in preset_names()):
        raise ValueError(f"{field}={preset!r} is not allowed; expected one of "
                         f"{', '.join(preset_names())} (arch.presets) or a .toml/.yaml design "
                         "file")
    return str(preset)


def is_design_file(preset: str) -> bool:
    """Whether a study's ``preset`` names a design file rather than an `arch.presets` function."""
    from arch.io import SUFFIXES

    return isinstance(preset, str) and Path(preset).suffix.lower() in SUFFIXES


def design_file_accelerator(path: str, mac_bits: tuple[int, int], dram_gbps: float, *,
                            peak_scaling: str | None = None, total_sram_kib: float | None = None,
                            **fields: Any) -> Accelerator:
    """A design file as a study's template: at the file's own MAC bits the design itself (at
    ``dram_gbps``); at other bits the design of the same area (`Accelerator.iso_area`, the
    file's area as the budget, ``peak_scaling`` by default the file's) with the file's total SRAM
    (or ``total_sram_kib``) split over its cores, as the presets keep it. ``fields`` override
    other Accelerator fields (None dropped)."""
    import dataclasses

    from arch import Accelerator, io

    base = io.load(path)
    kw = {k: v for k, v in fields.items() if v is not None}
    scaling = peak_scaling or base.peak_scaling
    total = total_sram_kib or base.sram_kib * base.cores
    if tuple(mac_bits) == base.mac_bits and scaling == base.peak_scaling \
            and total == base.sram_kib * base.cores:
        return dataclasses.replace(base, dram_gbps=float(dram_gbps), **kw)
    keep = {k: v for k, v in io.to_dict(base).items()
            if k not in ("cores", "mac_bits", "sram_kib", "peak_scaling", "dram_gbps")}
    keep["name"] = f"{base.name or Path(path).stem}-w{mac_bits[0]}a{mac_bits[1]}"
    keep.update(kw)
    bits = cast("tuple[int, int]", tuple(mac_bits))  # a JSON list also arrives here
    return Accelerator.iso_area(base.area, bits, peak_scaling=scaling,
                                total_sram_kib=total, dram_gbps=float(dram_gbps), **keep)


def preset_defaults(preset: str = "sysml19") -> tuple[str, str]:
    """(high_precision, peak_scaling) a preset uses when not told otherwise: the studies' headline
    model choices come from the preset, where they are fixed once with their sources."""
    from arch import presets

    if is_design_file(preset):
        from arch import io

        design = io.load(preset)
        return design.high_precision, design.peak_scaling

    acc = accelerator((2, 2), 32.0, preset=preset)
    fn = getattr(presets, preset)
    p = inspect.signature(fn).parameters.get("peak_scaling")
    scaling = p.default if p is not None and isinstance(p.default, str) else "doubling"
    return acc.high_precision, scaling


def layer_bits_summary(workload: Workload) -> dict[str, Any]:
    """How many MACs run at which (w, a) bits - a check that the recipe's bits reached the graph."""
    macs: dict[str, int] = {}
    for layer in workload.compute_layers():
        k = f"{layer.w_bits}x{layer.a_bits}"
        macs[k] = macs.get(k, 0) + layer.macs
    total = sum(macs.values()) or 1
    return {"workload": workload.name, "workload_macs": int(sum(macs.values())),
            "workload_weight_bytes": int(workload.weight_bytes),
            "macs_by_bits": json.dumps({k: round(v / total, 5) for k, v in sorted(macs.items())})}


def array_utilization(res: SimResult, acc: Accelerator) -> float:
    """Fraction of MAC-slot cycles the arrays are occupied: sum_l MACs_l * precision_factor_l /
    (MAC units * clock * latency).

    `SimResult.utilization` counts useful MACs only (a 16-bit MAC on a 2-bit array counts once
    although it holds the MAC for ``precision_factor`` slots); this counts what an occupancy
    counter on the array would, so a layer above the MAC precision keeps the array busy for as long
    as it really runs. Both are reported; they differ only on layers above the MAC precision.
    """
    layers = res.layers
    if res.latency_s <= 0 or not len(layers):
        return 0.0
    if "precision_factor" not in layers:  # not in the SimResult contract's minimum columns
        return math.nan
    slots = float((layers["macs"] * layers["precision_factor"]).sum())
    return slots / (acc.mac_count * acc.freq_hz * res.latency_s)


def simulate_row(workload: Workload, acc: Accelerator, *, batch: int = 1,
                 other_modes: bool = False, **options: Any) -> dict[str, Any]:
    """Simulate one design point and flatten it to a row: accelerator + workload + SimResult.

    ``other_modes``: also simulate the point in every `SIM_MODES` mode besides the one
    ``options`` give (default `HEADLINE_MODE`) and add ``latency_s@MODE`` columns, for the
    study's ``by_fidelity`` table (one simulation per mode: the options' own mode is the
    headline run). `simulate_point` also returns the headline `SimResult`."""
    return simulate_point(workload, acc, batch=batch, other_modes=other_modes, **options)[0]


def _mode_of(options: Mapping[str, Any]) -> str | None:
    """The `SIM_MODES` name ``dse.simulate(**options)`` runs at (its own defaults filling what
    ``options`` leave out); None if none is or the defaults cannot be read (then nothing is
    reused)."""
    from dse import simulate

    params = inspect.signature(simulate).parameters
    own = {k: options[k] if k in options else params[k].default if k in params else None
           for k in ("fidelity", "prefetch")}
    return next((m for m in SIM_MODES if sim_options(m) == own), None)


def simulate_point(workload: Workload, acc: Accelerator, *, batch: int = 1,
                   other_modes: bool = False, **options: Any
                   ) -> tuple[dict[str, Any], SimResult]:
    """`simulate_row`'s row and the headline `dse.SimResult` it flattens (its ``layers`` table
    for a study that needs more than the row, without simulating the point again)."""
    from dse import simulate

    res = simulate(workload, acc, batch=batch, **options)
    extra: dict[str, float] = {}
    if other_modes:
        own = _mode_of(options)
        for mode in SIM_MODES:
            if mode == own:  # the same simulation as the headline's: deterministic, run once
                extra[f"latency_s@{mode}"] = res.latency_s
                continue
            opts = {**options, **sim_options(mode)}
            extra[f"latency_s@{mode}"] = simulate(workload, acc, batch=batch, **opts).latency_s
    row: dict[str, Any] = {
        "accelerator": acc.name, "cores": acc.cores, "rows": acc.rows, "cols": acc.cols,
        "mac_w_bits": acc.mac_bits[0], "mac_a_bits": acc.mac_bits[1], "freq_ghz": acc.freq_ghz,
        "sram_kib": acc.sram_kib, "sram_total_mib": acc.sram_bytes_total / 2**20,
        "dataflow": acc.dataflow, "high_precision_model": options.get("high_precision",
                                                                       acc.high_precision),
        "peak_tops": acc.peak_ops_per_s / 1e12, "area_mm2": acc.area,
    }
    row.update(layer_bits_summary(workload))
    metrics = res.to_dict()
    for k, v in metrics.items():
        if isinstance(v, Mapping):  # to_dict is flat by contract; flatten defensively
            for kk, vv in v.items():
                row[f"{k}_{kk}"] = vv
        else:
            row[k] = v
    row["array_utilization"] = array_utilization(res, acc)
    row.update(extra)
    if isinstance(row.get("dram_gbps"), float) and math.isinf(row["dram_gbps"]):
        row["dram_gbps"] = math.inf
    return row, res
