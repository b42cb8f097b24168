"""How much of its space a search covers, and where its best design sits in that space.

* `design_count`: the number of distinct designs of a space (the product of every sampled
  parameter's choices); `grid`: those choices as Optuna's `GridSampler` takes them. A space no
  larger than the trial budget is enumerated (`resolve_sampler`: ``"auto"`` -> ``"grid"``), each
  design run once, instead of sampled with repeats.
* `distinct_evaluated`: how many distinct designs a study's trials evaluated (COMPLETE, PRUNED).
* `edge_notes`: the parameters of a design that sit on a bound of their choices (the widest or
  narrowest MAC, the most or least SRAM, the first or last core count or number of core groups,
  the largest edge group or its widest or narrowest MAC, a layer's fewest or most bits; a
  schedule and a stage split have no order): the optimum may lie outside the space,
  and the reports say so.
* `summary_lines`: the lines every search report carries (CLI output, ``summary.txt``): the
  formulation, the coverage, the best design and its edge warnings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dse.search.space import SearchSpace, decode_pair, encode_pair

if TYPE_CHECKING:
    import optuna

    from workloads.graph import Workload

__all__ = ["AUTO", "GRID_MAX_DESIGNS", "design_count", "distinct_evaluated", "edge_notes", "grid",
           "resolve_sampler", "summary_lines"]

AUTO = "auto"
"""Sampler name that `resolve_sampler` turns into ``"grid"`` for a space no larger than the
trial budget, else NSGA-II (several objectives) or TPE (one)."""

GRID_MAX_DESIGNS = 100_000
"""Largest space the ``"grid"`` sampler enumerates (Optuna's `GridSampler` holds every design in
memory); larger spaces are sampled."""

_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def grid(space: SearchSpace, workload: Workload) -> dict[str, list[Any]]:
    """Every sampled parameter -> its choices, named as `SearchSpace.suggest` names them."""
    out: dict[str, list[Any]] = {
        "mac_bits": [encode_pair(p) for p in space.mac_bits],
        "array": [encode_pair(p) for p in space.array_shapes],
    }
    if space.total_sram is None:
        out["sram_kib"] = [float(s) for s in space.sram_kib]
    if len(space.schedules) > 1:
        out["schedule"] = list(space.schedules)
    if len(space.groups) > 1:
        out["groups"] = list(space.groups)
    if len(space.micro_batches) > 1:
        out["micro_batch"] = list(space.micro_batches)
    if len(space.stage_splits) > 1:
        out["stage_split"] = list(space.stage_splits)
    if len(space.edge_cores) > 1:
        out["edge_cores"] = list(space.edge_cores)
    if len(space.edge_mac_bits) > 1:
        out["edge_mac_bits"] = [encode_pair(p) for p in space.edge_mac_bits]
    if space.cores is not None:
        out["cores"] = list(range(space.cores[0], space.cores[1] + 1))
    for name in space.searched_layers(workload):
        out[f"w:{name}"] = list(space.layer_w_bits)
        out[f"a:{name}"] = list(space.layer_a_bits)
    return out


def design_count(space: SearchSpace, workload: Workload) -> int:
    """Number of distinct designs of ``space`` on ``workload`` (exact; may be astronomically
    large with per-layer bits: (|w| x |a|) ** layers). Parameter combinations count as sampled,
    including moot ones (an edge MAC precision at 0 edge cores, a stage split of one group)."""
    n = len(space.mac_bits) * len(space.array_shapes)
    if space.total_sram is None:
        n *= len(space.sram_kib)
    n *= len(space.schedules) * len(space.groups) * len(space.micro_batches)
    n *= len(space.stage_splits) * len(space.edge_cores) * len(space.edge_mac_bits)
    if space.cores is not None:
        n *= space.cores[1] - space.cores[0] + 1
    layers = len(space.searched_layers(workload))
    per_layer: int = len(space.layer_w_bits) * len(space.layer_a_bits)
    total: int = n * per_layer**layers
    return total


def resolve_sampler(sampler: str, space: SearchSpace, workload: Workload, n_objectives: int,
                    n_trials: int) -> str:
    """The sampler a search uses: ``sampler`` itself, or for ``"auto"`` ``"grid"`` when the space
    holds at most ``n_trials`` designs (enumerated, each once), else ``"nsga2"`` for several
    objectives and ``"tpe"`` for one."""
    if sampler != AUTO:
        return sampler
    if n_trials > 0 and design_count(space, workload) <= min(n_trials, GRID_MAX_DESIGNS):
        return "grid"
    return "nsga2" if n_objectives > 1 else "tpe"


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


_EVALUATED = ("COMPLETE", "PRUNED")
"""Trial states that evaluated their design (PRUNED: found infeasible). A FAIL trial did not: it
raised, or its process was killed - before it chose a design, or while choosing one (then its
params are a part of a design: a parameter set no complete design has), or while simulating."""


def distinct_evaluated(study: optuna.Study) -> int:
    """Distinct designs (parameter sets) the study's trials evaluated (COMPLETE or PRUNED).
    FAIL trials are left out: counted, a trial killed after two of its three parameters was a
    design of its own and a resumed grid search ran one design too few (CI's random-SIGKILL test:
    11 of 12 designs, or "13 designs evaluated" in a 12-design space)."""
    return len({_key(t.params) for t in study.get_trials(deepcopy=False)
                if t.state.name in _EVALUATED and t.params})


def _bound(value: float, choices: Sequence[float], floor: float | None = None) -> str | None:
    """"lowest"/"highest" when ``value`` is the min/max of two or more distinct ``choices``;
    never "lowest" at ``floor``, a bound nothing lies below (1 core group, 1 bit)."""
    if len(set(choices)) < 2:
        return None
    if value <= min(choices):
        return None if floor is not None and value <= floor else "lowest"
    if value >= max(choices):
        return "highest"
    return None


def edge_notes(space: SearchSpace, params: Mapping[str, Any]) -> list[str]:
    """Every sampled parameter of a design (its Optuna ``params``) that sits on a bound of its
    choices, as one phrase each, e.g. ``"mac_bits=8x8 is the widest offered (2x2 .. 8x8)"``.

    Ordered parameters only, each by a scale that orders it: MAC precision by MAC area
    (`arch.area.mac_area`, so 2x4 lies between 2x2 and 4x4), arrays by MAC count, SRAM, cores and
    per-layer bits by value. A parameter with one choice is not searched and never on an edge,
    and a lowest choice that nothing lies below (a 1x1 MAC, a 1-MAC array, 1 core, 1 core group,
    1 bit) is no edge either.
    """
    from arch.area import mac_area

    def mac_note(name: str, offered: Sequence[tuple[int, int]], what: str) -> None:
        areas = [mac_area(*p) for p in offered]
        side = _bound(mac_area(*decode_pair(params[name])), areas, mac_area(1, 1))
        if side:
            word = "narrowest" if side == "lowest" else "widest"
            notes.append(f"{name}={params[name]} is the {word} {what} offered "
                         f"({_span([encode_pair(p) for p in offered], areas)})")

    notes: list[str] = []
    if "mac_bits" in params:
        mac_note("mac_bits", space.mac_bits, "MAC")
    if "array" in params:
        sizes = [r * c for r, c in space.array_shapes]
        r, c = decode_pair(params["array"])
        side = _bound(r * c, sizes, 1)
        if side:
            word = "smallest" if side == "lowest" else "largest"
            notes.append(f"array={params['array']} is the {word} array offered "
                         f"({_span([encode_pair(p) for p in space.array_shapes], sizes)})")
    if "sram_kib" in params:
        side = _bound(float(params["sram_kib"]), space.sram_kib)
        if side:
            notes.append(f"sram_kib={float(params['sram_kib']):g} is the {side} SRAM per core "
                         f"offered ({min(space.sram_kib):g} .. {max(space.sram_kib):g} KiB)")
    if "cores" in params and space.cores is not None:
        side = _bound(int(params["cores"]), space.cores, 1)
        if side:
            notes.append(f"cores={int(params['cores'])} is the {side} core count offered "
                         f"({space.cores[0]} .. {space.cores[1]})")
    counts: tuple[tuple[str, tuple[int, ...], int, str, str], ...] = (
        # parameter, its choices, the floor nothing lies below, what it is, the range's unit
        ("groups", space.groups, 1, "number of core groups", ""),
        ("micro_batch", space.micro_batches, 1, "micro-batch", ""),
        ("edge_cores", space.edge_cores, 0, "edge group", " cores"))
    for name, choices, floor, what, unit in counts:
        if name in params:
            value = int(params[name])
            side = _bound(value, choices, floor)
            if side:
                notes.append(f"{name}={value} is the {side} {what} offered "
                             f"({min(choices)} .. {max(choices)}{unit})")
    if "edge_mac_bits" in params and int(params.get("edge_cores", space.edge_cores[0])) > 0:
        mac_note("edge_mac_bits", space.edge_mac_bits, "edge MAC")
    layer_edges = []
    for name, value in params.items():
        if name[:2] in ("w:", "a:"):
            choices = space.layer_w_bits if name[0] == "w" else space.layer_a_bits
            side = _bound(int(value), choices, 1)
            if side:
                layer_edges.append(f"{name}={int(value)} ({side} of {min(choices)} .. "
                                   f"{max(choices)})")
    if layer_edges:
        shown = ", ".join(layer_edges[:8])
        more = f" and {len(layer_edges) - 8} more" if len(layer_edges) > 8 else ""
        notes.append(f"per-layer bits on a bound: {shown}{more}")
    return notes


def _span(names: Sequence[str], scale: Sequence[float]) -> str:
    ordered = [n for _, n in sorted(zip(scale, names, strict=True))]
    return f"{ordered[0]} .. {ordered[-1]}"


def summary_lines(study: optuna.Study, space: SearchSpace, workload: Workload, sampler: str,
                  best: optuna.trial.FrozenTrial | None,
                  best_metrics: Mapping[str, Any] | None = None) -> list[str]:
    """The lines that open every search report: formulation, coverage of the space, the best
    design, and a warning per best-design parameter on the edge of the space."""
    n = design_count(space, workload)
    seen = distinct_evaluated(study)
    finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in _FINISHED)
    size = f"{n:,}" if n < 10**15 else f"~10^{math.log10(n):.0f}"
    if sampler == "grid" and seen >= n:
        coverage = f"enumerated all {size} designs of the space (grid sampler, each once)"
    elif sampler == "grid":
        coverage = (f"enumerated {seen:,} of the {size} designs of the space (grid sampler; "
                    "incomplete: resume with more trials to finish it)")
    else:
        coverage = (f"sampled {finished:,} trials ({sampler}): {seen:,} distinct of the {size} "
                    "designs of the space")
    lines = [space.describe_formulation(), coverage]
    if best is None:
        lines.append("no feasible design")
        return lines
    m = dict(best_metrics or {})
    what = (f"best: trial {best.number}, {m.get('cores', '?')} cores of {m.get('rows', '?')}x"
            f"{m.get('cols', '?')} {m.get('mac_bits', '?')} MACs, "
            f"{float(m.get('sram_kib', math.nan)):.4g} KiB SRAM per core")
    if m.get("schedule") and (len(space.schedules) > 1 or len(space.groups) > 1
                              or m["schedule"] != "layer_by_layer"):
        what += f", {m['schedule']} on {int(m.get('groups', 1))} core group(s)"
        if int(m.get("micro_batch", 1)) > 1:
            what += f" in micro-batches of {int(m['micro_batch'])} images"
        if m.get("stage_split") == "macs":
            what += ", stages of equal MACs"
    if int(m.get("edge_cores", 0) or 0) > 0:
        what += (f", of them {int(m['edge_cores'])} in a {m.get('edge_mac_bits', '?')} edge group "
                 "for the first/last layers")
    if "images_per_s" in m:
        what += f", {float(m['images_per_s']):.4g} images/s"
    lines.append(what)
    lines += [f"warning: the best design is on the edge of its space: {note}; a design beyond "
              "it may be better (widen the space)" for note in edge_notes(space, best.params)]
    return lines
