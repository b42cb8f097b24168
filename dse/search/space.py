"""The design space the search samples: accelerator parameters and per-layer bit widths.

A `SearchSpace` is a frozen, validated value. `SearchSpace.suggest(trial, workload)` asks an Optuna
trial for one `Design`: an accelerator (core count, array shape, MAC precision, SRAM per core) and
the (weight, activation) bits of every compute layer of the workload.

Core count has two modes:

* ``cores=None`` (default, *iso-area fill*): the core count is the largest that fits the area
  budget for the sampled array shape, MAC precision and SRAM per core. Choosing more SRAM per core
  then means fewer cores: the sampler searches the area split between compute and memory.
* ``cores=(lo, hi)``: the core count is sampled (log-uniform integer); designs over the budget are
  infeasible and the search prunes them.

SRAM has two formulations (``formulation``, `FORMULATIONS`):

* ``"per_core_sram"`` (default): every core carries ``sram_kib`` KiB (sampled from the choices), so
  the SRAM grows with the core count and the area budget pays for it core by core. SRAM then
  dominates a core's area (2 MiB is ~6x an 8x64 array of 16x16-bit MACs at 14 nm), so the MAC
  precision barely changes the core count and wide MACs look cheap.
* ``"fixed_total_sram"``: the chip holds ``total_sram_kib`` KiB whatever the core count, split
  evenly over the cores (the PACT-SAWB paper's template and `studies.wrpn_vs_pact`: same total
  SRAM at every precision); the rest of the area budget buys cores at the sampled MAC precision.
  ``sram_kib`` is unused (no SRAM parameter is sampled).

Layer bits have three modes (``layer_bits``):

* ``"recipe"``: every layer keeps the bits the workload was extracted with (the quant recipe's).
* ``"mac"``: every non-fixed compute layer runs at the sampled MAC precision (uniform precision).
* ``"search"``: every non-fixed compute layer gets its own weight and activation bits, sampled from
  ``layer_w_bits`` x ``layer_a_bits`` (mixed precision). The default choices (1, 2, 4, 8) reach
  below the 2-bit recipes (W2A2 PACT-SAWB, W2A4 WRPN): with only choices >= the recipe's bits,
  no assignment can be less accurate than the recipe, and an accuracy floor at the recipe's score
  (the CLI's ``--min-accuracy recipe``) could never reject a design.

``fixed_roles`` names the layer roles that are never searched (default: the first and last
layers, ``Layer.role`` "first"/"last", and residual projection shortcuts, "shortcut"), as in the
PACT-SAWB paper (Section 5: full-precision shortcuts; Section 7.3: 16-bit first/last layers). A
fixed layer keeps the bits it was extracted with (the recipe's), or ``first_last_bits`` /
``shortcut_bits`` when given. Drop a role from ``fixed_roles`` to search those layers too.

Optuna categorical choices must be scalars, so pairs are encoded as strings: ``"2x4"`` for
``mac_bits=(2, 4)``, ``"8x64"`` for an 8-row, 64-column array.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # optuna and arch are imported lazily: a worker imports what it uses
    import optuna

    from arch import Accelerator
    from workloads.graph import Workload

__all__ = ["DEFAULT_TOTAL_SRAM_KIB", "FORMULATIONS", "LAYER_BITS_MODES", "SEARCHED_FIELDS",
           "Design", "SearchSpace", "apply_layer_bits", "base_fields", "decode_pair",
           "encode_pair", "max_cores_within"]

LAYER_BITS_MODES = ("recipe", "mac", "search")
FORMULATIONS = ("per_core_sram", "fixed_total_sram")
"""How a design's SRAM is sized (module docstring): per core (sampled) or a fixed chip total."""
DEFAULT_TOTAL_SRAM_KIB = 16 * 1024.0
"""``total_sram_kib`` when None: the sysml19 template's 16 MiB (`arch.presets.sysml19`)."""
ROLES = ("first", "last", "shortcut")
_MAX_CORES = 1 << 16


def encode_pair(pair: tuple[int, int]) -> str:
    """``(2, 4) -> "2x4"`` (Optuna categorical values must be scalars)."""
    return f"{int(pair[0])}x{int(pair[1])}"


def decode_pair(text: str) -> tuple[int, int]:
    """``"2x4" -> (2, 4)``; ValueError on anything else."""
    parts = str(text).split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"pair={text!r} is not allowed; expected 'AxB' with integers A, B")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True, slots=True)
class Design:
    """One sampled design: the accelerator and the bits of every compute layer."""

    accelerator: Accelerator
    layer_bits: Mapping[str, tuple[int, int]]
    """Compute-layer name -> (w_bits, a_bits)."""
    schedule: str = "layer_by_layer"
    groups: int | None = None
    """Equal core groups of the schedule (`dse.simulate`'s ``groups``); None: one pool of cores,
    layer by layer (today's model)."""
    micro_batch: int = 1
    """Images that move through the core groups together (`dse.simulate`'s ``micro_batch``);
    1 on one pool, which plays the whole batch as one tensor anyway."""
    edge_cores: int = 0
    """Cores of the high-precision edge group (0: none): then the accelerator's
    ``core_groups`` are (edge, body) and ``stages`` puts the first and last layers on the edge."""
    edge_mac_bits: tuple[int, int] | None = None
    """The edge group's MAC precision (None without an edge group)."""
    stage_split: str = "balanced"
    """`dse.search.stages.STAGE_SPLITS`: how a multi-group schedule's stages were cut."""
    stages: Mapping[str, int] | None = None
    """`dse.simulate`'s ``stages`` (None: the simulator's balanced split, or one pool)."""
    reason: str = ""
    """Why this combination of choices cannot run (the trial is pruned); empty when it can."""

    def simulate_kwargs(self) -> dict[str, Any]:
        """The ``schedule``/``groups``/``micro_batch``/``stages`` arguments of `dse.simulate`."""
        out: dict[str, Any] = {"schedule": self.schedule, "groups": self.groups,
                               "micro_batch": self.micro_batch}
        if self.stages is not None:
            out["stages"] = dict(self.stages)
        return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Bounds and choices of the design search; validated on construction."""

    mac_bits: tuple[tuple[int, int], ...] = ((2, 2), (2, 4), (4, 4), (8, 8), (16, 16))
    array_shapes: tuple[tuple[int, int], ...] = ((8, 64),)
    sram_kib: tuple[float, ...] = (512.0, 1024.0, 2048.0)
    cores: tuple[int, int] | None = None
    layer_bits: str = "recipe"
    layer_w_bits: tuple[int, ...] = (1, 2, 4, 8)
    layer_a_bits: tuple[int, ...] = (1, 2, 4, 8)
    first_last_bits: int | None = None
    shortcut_bits: int | None = None
    fixed_roles: tuple[str, ...] = ("first", "last", "shortcut")
    schedules: tuple[str, ...] = ("layer_by_layer",)
    groups: tuple[int, ...] = (1,)
    micro_batches: tuple[int, ...] = (1,)
    """Multi-core schedules (`dse.sim.simulate.SCHEDULES`) and numbers of equal core groups to
    choose from, and micro-batch sizes (images moving through the groups together; each must
    divide the search's batch); each is a parameter (``schedule``, ``groups``, ``micro_batch``)
    only with several choices. ``layer_by_layer`` on 1 group is today's model (the whole batch as
    one tensor, so its micro-batch is moot and set to 1); pipeline stages are balanced by
    estimated stage time (`dse.sim.schedule`)."""
    stage_splits: tuple[str, ...] = ("balanced",)
    """How multi-group schedules (pipeline, layer by layer on several groups) cut their stages
    (`dse.search.stages.STAGE_SPLITS`): ``balanced`` by estimated stage time (the simulator's
    default) or ``macs`` (contiguous stages of equal MACs); parameter ``stage_split`` only with
    several choices, moot (recorded "balanced") for one group and data-parallel."""
    edge_cores: tuple[int, ...] = (0,)
    edge_mac_bits: tuple[tuple[int, int], ...] = ((16, 16),)
    """A high-precision edge core group for the first and last layers (`dse.search.stages`):
    its core counts (0: none) and MAC precisions, parameters ``edge_cores`` / ``edge_mac_bits``
    only with several choices (``edge_mac_bits`` moot, recorded empty, at 0 edge cores). The
    body group gets the cores the area budget leaves after the edge group (its SRAM per core as
    the body's; under ``fixed_total_sram`` every core, edge or body, gets total / cores). An
    edge design runs layer by layer, the whole batch as one tensor per layer; with another
    schedule or several equal groups the trial is pruned (the edge group already splits the
    cores, and a pipeline cannot send the last layer back to the first group)."""
    formulation: str = "per_core_sram"
    total_sram_kib: float | None = None
    """Chip SRAM of the ``"fixed_total_sram"`` formulation, KiB (None: `DEFAULT_TOTAL_SRAM_KIB`);
    must stay None under ``"per_core_sram"``."""
    base: tuple[tuple[str, Any], ...] = ()
    """The template's other `arch.Accelerator` fields as (name, value) pairs - clock, dataflow,
    node, latencies, buffers - from a design file or preset (`base_fields`); empty: the sysml19
    preset's. Cores, array, MAC bits, SRAM and bandwidth are the search's."""

    def __post_init__(self) -> None:
        problems: list[str] = []

        def bad(name: str, value: object, allowed: str) -> None:
            problems.append(f"{name}={value!r} is not allowed; {allowed}")

        def bits_ok(b: object) -> bool:
            return _is_int(b) and 1 <= b <= 32  # type: ignore[operator]

        def pairs(name: str, value: object, lo: int, hi: int) -> None:
            if not isinstance(value, tuple) or not value:
                bad(name, value, "expected a non-empty tuple of (int, int) pairs")
                return
            for p in value:
                if not (isinstance(p, tuple) and len(p) == 2 and all(_is_int(x) for x in p)
                        and all(lo <= x <= hi for x in p)):
                    bad(name, value, f"expected every entry a pair of integers in {lo}..{hi}")
                    return
            if len(set(value)) != len(value):
                bad(name, value, "expected distinct entries")

        pairs("mac_bits", self.mac_bits, 1, 32)
        pairs("array_shapes", self.array_shapes, 1, 4096)
        if not isinstance(self.sram_kib, tuple) or not self.sram_kib:
            bad("sram_kib", self.sram_kib, "expected a non-empty tuple of KiB per core")
        elif not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                     and v > 0 for v in self.sram_kib):
            bad("sram_kib", self.sram_kib, "expected finite numbers of KiB > 0")
        elif len(set(self.sram_kib)) != len(self.sram_kib):
            bad("sram_kib", self.sram_kib, "expected distinct entries")
        if self.cores is not None:
            c = self.cores
            if not (isinstance(c, tuple) and len(c) == 2 and all(_is_int(x) for x in c)):
                bad("cores", c, "expected None (iso-area fill) or a (lo, hi) pair of integers")
            elif not 1 <= c[0] <= c[1] <= _MAX_CORES:
                bad("cores", c, f"expected 1 <= lo <= hi <= {_MAX_CORES}")
        from dse.sim.simulate import SCHEDULES

        if not (isinstance(self.schedules, tuple) and self.schedules
                and set(self.schedules) <= set(SCHEDULES)
                and len(set(self.schedules)) == len(self.schedules)):
            bad("schedules", self.schedules, f"expected distinct names from {', '.join(SCHEDULES)}")
        if not (isinstance(self.groups, tuple) and self.groups
                and all(_is_int(g) and 1 <= g <= _MAX_CORES for g in self.groups)
                and len(set(self.groups)) == len(self.groups)):
            bad("groups", self.groups, f"expected distinct integers in 1..{_MAX_CORES} (equal "
                "core groups)")
        if not (isinstance(self.micro_batches, tuple) and self.micro_batches
                and all(_is_int(m) and m >= 1 for m in self.micro_batches)
                and len(set(self.micro_batches)) == len(self.micro_batches)):
            bad("micro_batches", self.micro_batches, "expected distinct integers >= 1 (images "
                "per micro-batch)")
        from dse.search.stages import STAGE_SPLITS

        if not (isinstance(self.stage_splits, tuple) and self.stage_splits
                and set(self.stage_splits) <= set(STAGE_SPLITS)
                and len(set(self.stage_splits)) == len(self.stage_splits)):
            bad("stage_splits", self.stage_splits,
                f"expected distinct names from {', '.join(STAGE_SPLITS)}")
        if not (isinstance(self.edge_cores, tuple) and self.edge_cores
                and all(_is_int(k) and 0 <= k <= _MAX_CORES for k in self.edge_cores)
                and len(set(self.edge_cores)) == len(self.edge_cores)):
            bad("edge_cores", self.edge_cores, f"expected distinct integers in 0..{_MAX_CORES} "
                "(cores of the high-precision edge group; 0: none)")
        pairs("edge_mac_bits", self.edge_mac_bits, 1, 32)
        if self.formulation not in FORMULATIONS:
            bad("formulation", self.formulation, f"expected one of {', '.join(FORMULATIONS)}")
        t = self.total_sram_kib
        if t is not None and self.formulation == "per_core_sram":
            bad("total_sram_kib", t, "expected None with formulation='per_core_sram' (each core "
                "carries its sram_kib); a fixed total needs formulation='fixed_total_sram'")
        elif t is not None and not (isinstance(t, int | float) and not isinstance(t, bool)
                                    and math.isfinite(t) and t > 0):
            bad("total_sram_kib", t, "expected None or a finite number of KiB > 0")
        if self.layer_bits not in LAYER_BITS_MODES:
            bad("layer_bits", self.layer_bits, f"expected one of {', '.join(LAYER_BITS_MODES)}")
        for name in ("layer_w_bits", "layer_a_bits"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not v or not all(bits_ok(b) for b in v):
                bad(name, v, "expected a non-empty tuple of integers in 1..32")
            elif len(set(v)) != len(v):
                bad(name, v, "expected distinct entries")
        for name in ("first_last_bits", "shortcut_bits"):
            v = getattr(self, name)
            if v is not None and not bits_ok(v):
                bad(name, v, "expected None (keep the recipe's bits) or an integer in 1..32")
        if not isinstance(self.fixed_roles, tuple) or not set(self.fixed_roles) <= set(ROLES):
            bad("fixed_roles", self.fixed_roles, f"expected a tuple of roles from {ROLES}")
        if problems:
            raise ValueError("invalid SearchSpace: " + "; ".join(problems))

    @property
    def total_sram(self) -> float | None:
        """The fixed chip SRAM in KiB (``"fixed_total_sram"``), None under ``"per_core_sram"``."""
        if self.formulation != "fixed_total_sram":
            return None
        return float(self.total_sram_kib if self.total_sram_kib is not None
                     else DEFAULT_TOTAL_SRAM_KIB)

    def describe_formulation(self) -> str:
        """One line naming the formulation and what it means, for every report."""
        total = self.total_sram
        if total is None:
            return ("formulation per_core_sram: every core carries its sampled SRAM "
                    f"({', '.join(f'{s:g}' for s in self.sram_kib)} KiB); cores and SRAM share "
                    "the area budget")
        return (f"formulation fixed_total_sram: {total:g} KiB of SRAM in total, split evenly "
                "over the cores; the rest of the area budget buys cores")

    # -- layers --------------------------------------------------------------------------------
    def fixed_bits(self, workload: Workload) -> dict[str, tuple[int, int]]:
        """Compute layers whose bits the space fixes (roles in ``fixed_roles``) -> (w, a)."""
        out: dict[str, tuple[int, int]] = {}
        for la in workload.compute_layers():
            if la.role not in self.fixed_roles or not la.role:
                continue
            b = self.shortcut_bits if la.role == "shortcut" else self.first_last_bits
            out[la.name] = (b, b) if b is not None else (la.w_bits, la.a_bits)
        return out

    def searched_layers(self, workload: Workload) -> list[str]:
        """Compute layers whose bits a trial samples (empty unless ``layer_bits == "search"``)."""
        if self.layer_bits != "search":
            return []
        fixed = self.fixed_bits(workload)
        return [la.name for la in workload.compute_layers() if la.name not in fixed]

    def layer_bits_for(self, workload: Workload, mac_bits: tuple[int, int],
                       sampled: Mapping[str, tuple[int, int]] | None = None
                       ) -> dict[str, tuple[int, int]]:
        """(w, a) of every compute layer for a design with ``mac_bits`` and sampled layer bits."""
        fixed = self.fixed_bits(workload)
        sampled = sampled or {}
        out: dict[str, tuple[int, int]] = {}
        for la in workload.compute_layers():
            if la.name in fixed:
                out[la.name] = fixed[la.name]
            elif self.layer_bits == "mac":
                out[la.name] = mac_bits
            elif self.layer_bits == "search":
                out[la.name] = sampled[la.name]
            else:
                out[la.name] = (la.w_bits, la.a_bits)
        return out

    # -- sampling --------------------------------------------------------------------------------
    def suggest(self, trial: optuna.trial.BaseTrial, workload: Workload, *, area_budget: float,
                dram_gbps: float, batch: int = 1) -> Design | None:
        """Ask ``trial`` for one design; None when no design with these choices fits the budget.

        Parameter names: ``mac_bits``, ``array``, ``sram_kib``, ``schedule``, ``groups``,
        ``micro_batch``, ``stage_split``, ``edge_cores`` and ``edge_mac_bits`` (with several
        choices), ``cores`` (when searched) and ``w:<layer>`` / ``a:<layer>`` per searched layer.
        Under ``"fixed_total_sram"`` no ``sram_kib`` is sampled: each core gets
        ``total_sram_kib / cores``. ``batch``: the search's batch, which an edge design plays
        as one tensor per layer (its ``micro_batch``).
        """
        mac = decode_pair(trial.suggest_categorical(
            "mac_bits", [encode_pair(p) for p in self.mac_bits]))
        rows, cols = decode_pair(trial.suggest_categorical(
            "array", [encode_pair(p) for p in self.array_shapes]))
        total = self.total_sram
        sram = total if total is not None else float(
            trial.suggest_categorical("sram_kib", [float(s) for s in self.sram_kib]))
        sampled: dict[str, tuple[int, int]] = {}
        for name in self.searched_layers(workload):
            sampled[name] = (int(trial.suggest_categorical(f"w:{name}", list(self.layer_w_bits))),
                             int(trial.suggest_categorical(f"a:{name}", list(self.layer_a_bits))))
        schedule = str(self.schedules[0] if len(self.schedules) == 1
                       else trial.suggest_categorical("schedule", list(self.schedules)))
        groups = int(self.groups[0] if len(self.groups) == 1
                     else trial.suggest_categorical("groups", list(self.groups)))
        micro = int(self.micro_batches[0] if len(self.micro_batches) == 1
                    else trial.suggest_categorical("micro_batch", list(self.micro_batches)))
        split = str(self.stage_splits[0] if len(self.stage_splits) == 1
                    else trial.suggest_categorical("stage_split", list(self.stage_splits)))
        edge = int(self.edge_cores[0] if len(self.edge_cores) == 1
                   else trial.suggest_categorical("edge_cores", list(self.edge_cores)))
        edge_mac = decode_pair(encode_pair(self.edge_mac_bits[0]) if len(self.edge_mac_bits) == 1
                               else trial.suggest_categorical(
                                   "edge_mac_bits", [encode_pair(p) for p in self.edge_mac_bits]))
        template = self.template(mac, rows, cols, sram, dram_gbps, self.base)
        bits = self.layer_bits_for(workload, mac, sampled)
        if edge > 0:
            return self._edge_design(trial, workload, template, edge, edge_mac, bits, total,
                                     area_budget, schedule, groups, batch)
        if self.cores is None:
            n = max_cores_within(template, area_budget, total_sram_kib=total)
            if n == 0:
                return None
        else:
            n = trial.suggest_int("cores", self.cores[0], self.cores[1], log=True)
        acc = _with_cores(template, n, total)
        one_pool = schedule == "layer_by_layer" and groups == 1  # today's model: groups=None
        stages = None
        if one_pool or schedule == "data_parallel" or groups == 1:
            split = "balanced"  # no stages to cut
        elif split == "macs" and groups <= min(n, len(workload.compute_layers())):
            from dse.search.stages import mac_stages

            stages = mac_stages(workload, groups)
        return Design(acc, bits, schedule, None if one_pool else groups, 1 if one_pool else micro,
                      stage_split=split, stages=stages)

    def _edge_design(self, trial: optuna.trial.BaseTrial, workload: Workload,
                     template: Accelerator, edge: int, edge_mac: tuple[int, int],
                     bits: Mapping[str, tuple[int, int]], total: float | None,
                     area_budget: float, schedule: str, groups: int, batch: int
                     ) -> Design | None:
        """A design with an ``edge``-core group of ``edge_mac`` MACs for the first and last
        layers beside the body group (`SearchSpace.edge_cores`)."""
        from dse.search.stages import edge_stages

        if self.cores is None:
            n = _largest(lambda b: _with_edge(template, edge, edge_mac, b, total).area
                         <= area_budget)
            if n == 0:
                return None
        else:  # the sampled count is the body's; the edge group comes on top (area-checked)
            n = trial.suggest_int("cores", self.cores[0], self.cores[1], log=True)
        acc = _with_edge(template, edge, edge_mac, n, total)
        if schedule != "layer_by_layer" or groups != 1:  # recorded as sampled, never run
            return Design(acc, bits, schedule, groups, 1, edge_cores=edge, edge_mac_bits=edge_mac,
                          reason=f"edge_cores={edge} needs schedule=layer_by_layer on groups=1 "
                          f"(got {schedule} on {groups}): the edge and body groups are the "
                          "design's core groups")
        return Design(acc, bits, "layer_by_layer", None, max(1, int(batch)), edge_cores=edge,
                      edge_mac_bits=edge_mac, stages=edge_stages(workload))

    def smallest_design(self, dram_gbps: float) -> tuple[float, str]:
        """Area in mm^2 of the space's smallest design, and a description of it.

        Every combination of MAC bits, array shape, SRAM and edge group (`edge_cores`,
        `edge_mac_bits`) at the fewest body cores the space allows (1 in iso-area fill mode,
        ``cores[0]`` when sampled), as the design `suggest` would build, its area the
        accelerator's own (`Accelerator.area`: every core group counts): area grows with the
        core count, so no design of the space is smaller. A budget below this prunes every trial.
        """
        n = 1 if self.cores is None else self.cores[0]
        total = self.total_sram
        srams = self.sram_kib if total is None else (total,)
        edges: list[tuple[int, tuple[int, int] | None]] = [
            (k, p) for k in self.edge_cores for p in (self.edge_mac_bits if k else (None,))]
        best: tuple[float, str] = (math.inf, "")
        for mac in self.mac_bits:
            for rows, cols in self.array_shapes:
                for sram in srams:
                    template = self.template(mac, rows, cols, sram, dram_gbps, self.base)
                    for k, edge_mac in edges:
                        acc = (_with_cores(template, n, total) if edge_mac is None
                               else _with_edge(template, k, edge_mac, n, total))
                        if acc.area < best[0]:
                            best = (float(acc.area), _smallest_text(
                                n, rows, cols, mac, sram, total, k, edge_mac))
        return best

    @staticmethod
    def template(mac_bits: tuple[int, int], rows: int, cols: int, sram_kib: float,
                 dram_gbps: float, base: tuple[tuple[str, Any], ...] = ()) -> Accelerator:
        """One-core design on the ``base`` template (clock, dataflow, latencies; default the
        sysml19 preset's)."""
        start = _sysml19_base(float(dram_gbps)) if not base else _base(base, float(dram_gbps))
        return dataclasses.replace(start, cores=1, rows=rows, cols=cols,
                                   mac_bits=(int(mac_bits[0]), int(mac_bits[1])),
                                   sram_kib=float(sram_kib), name="")

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (list(map(list, v)) if k in ("mac_bits", "array_shapes", "edge_mac_bits")
                    else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SearchSpace fields {unknown}; allowed: {sorted(known)}")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k in ("mac_bits", "array_shapes", "edge_mac_bits", "base"):
                kw[k] = tuple(tuple(p) for p in v)
            elif isinstance(v, list):
                kw[k] = tuple(v)
            else:
                kw[k] = v
        return cls(**kw)


@lru_cache(maxsize=16)
def _sysml19_base(dram_gbps: float) -> Accelerator:
    """The preset's 16-bit system: its clock, node, dataflow, latencies and high-precision model
    do not depend on the MAC precision, so every template starts from it.

    Searched designs are sized by the area model (`max_cores_within`), not by the paper's
    2x-per-halving rule, so they carry ``peak_scaling="density"``: a layer above the MAC
    precision is then slowed by the same area ratio that sized the design
    (`Accelerator.precision_slowdown`)."""
    from arch.presets import sysml19

    return dataclasses.replace(sysml19(mac_bits=(16, 16), dram_gbps=dram_gbps),
                               peak_scaling="density")


SEARCHED_FIELDS = ("cores", "rows", "cols", "mac_bits", "sram_kib", "dram_gbps", "name",
                   "peak_scaling")
"""Accelerator fields the search sets itself (not taken from a base design)."""


def base_fields(acc: Accelerator) -> tuple[tuple[str, Any], ...]:
    """``SearchSpace.base`` of a design: its fields but `SEARCHED_FIELDS` (and its empty
    ``core_groups``), lists as tuples (the base is hashable: templates are cached on it).

    A design with core groups is refused: the search sizes homogeneous designs (one array shape,
    one MAC precision), which a heterogeneous base would contradict."""
    from arch.io import to_dict

    if getattr(acc, "core_groups", ()):
        raise ValueError(f"core_groups=({len(acc.core_groups)} groups) is not allowed in the "
                         "search's base design; expected a homogeneous design (the search sets "
                         "the cores, array and MAC precision itself)")
    return tuple((k, _hashable(v)) for k, v in to_dict(acc).items()
                 if k not in SEARCHED_FIELDS and k != "core_groups")


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


@lru_cache(maxsize=16)
def _base(base: tuple[tuple[str, Any], ...], dram_gbps: float) -> Accelerator:
    """A one-core design from ``base`` fields, sized by the area model (``density``), as
    `_sysml19_base` is."""
    from arch import Accelerator

    return Accelerator(cores=1, dram_gbps=dram_gbps, peak_scaling="density", **dict(base))


def _with_edge(template: Accelerator, edge: int, edge_mac_bits: tuple[int, int], body: int,
               total_sram_kib: float | None) -> Accelerator:
    """``template`` as an edge group of ``edge`` cores with ``edge_mac_bits`` MACs beside a body
    group of ``body`` cores (the template's); a fixed total SRAM is split over all the cores."""
    from arch.groups import CoreGroup

    acc = _with_cores(template, edge + body, total_sram_kib)
    return dataclasses.replace(acc, core_groups=(
        CoreGroup(edge, mac_bits=edge_mac_bits, name="edge"), CoreGroup(body, name="body")))


def _smallest_text(body: int, rows: int, cols: int, mac: tuple[int, int], sram_kib: float,
                   total_sram_kib: float | None, edge: int, edge_mac: tuple[int, int] | None
                   ) -> str:
    """E.g. "1 core of 8x64 2x2 MACs with 512 KiB SRAM beside a 4-core 8x8 edge group"."""
    what = (f"{sram_kib:g} KiB SRAM" if total_sram_kib is None
            else f"{total_sram_kib:g} KiB SRAM in total")
    text = f"{body} core{'s' * (body > 1)} of {rows}x{cols} {encode_pair(mac)} MACs with {what}"
    if edge_mac is not None:
        text += f" beside a {edge}-core {encode_pair(edge_mac)} edge group"
    return text


def _largest(fits: Callable[[int], bool]) -> int:
    """Largest n in 1..`_MAX_CORES` with ``fits(n)`` for a monotone ``fits`` (0 if not even 1):
    a doubling search, then bisection."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= _MAX_CORES and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, _MAX_CORES + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _with_cores(template: Accelerator, cores: int, total_sram_kib: float | None) -> Accelerator:
    """``template`` with ``cores`` cores; with a fixed total SRAM each gets ``total / cores``."""
    if total_sram_kib is None:
        return dataclasses.replace(template, cores=cores)
    return dataclasses.replace(template, cores=cores, sram_kib=total_sram_kib / cores)


def max_cores_within(template: Accelerator, area_budget: float, *,
                     total_sram_kib: float | None = None) -> int:
    """Largest core count whose area is <= ``area_budget`` mm^2 (0 if not even one core fits).

    ``total_sram_kib``: the chip's SRAM, split over the cores (the ``"fixed_total_sram"``
    formulation); None: every core keeps the template's ``sram_kib``. Either way area grows with
    the core count (each core brings its array, control and per-core SRAM; a fixed total stays
    put), so a doubling search followed by bisection finds the boundary in O(log n) area
    evaluations.
    """
    if not (math.isfinite(area_budget) and area_budget > 0):
        raise ValueError(f"area_budget={area_budget!r} is not allowed; expected mm^2 > 0")

    return _largest(lambda n: _with_cores(template, n, total_sram_kib).area <= area_budget)


def apply_layer_bits(workload: Workload, bits: Mapping[str, tuple[int, int]]) -> Workload:
    """A copy of ``workload`` whose compute layers carry ``bits`` (name -> (w_bits, a_bits)).

    No retracing: each `Layer` is rewritten with `dataclasses.replace`. The tensors feeding a
    rewritten layer are stored at its activation bits, so its in-edges get ``bits = a_bits`` and
    recomputed ``bytes``, and a memory-only producer (activation, pooling, flatten: the op whose
    output the activation quantizer writes) gets ``o_bits`` = the largest ``a_bits`` among its
    compute consumers (rewritten or not). Compute layers' own ``o_bits`` (accumulator-side
    outputs) are left as extracted.
    """
    from workloads.graph import Workload, bytes_for

    g = workload.graph.copy()
    unknown = sorted(set(bits) - {la.name for la in workload.compute_layers()})
    if unknown:
        raise ValueError(f"layer bits for unknown compute layers {unknown[:5]}; expected names "
                         f"from workload {workload.name!r}")
    producer_bits: dict[str, int] = {}
    for name, (w, a) in bits.items():
        la = g.nodes[name]["layer"]
        if (la.w_bits, la.a_bits) != (w, a):
            g.nodes[name]["layer"] = dataclasses.replace(la, w_bits=int(w), a_bits=int(a))
        for src in g.predecessors(name):
            e = g.edges[src, name]
            elems = math.prod(e.get("shape", ())) if e.get("shape") else 0
            g.edges[src, name].update(bits=int(a), bytes=bytes_for(elems, int(a)))
            p = g.nodes[src]["layer"]
            if not p.is_compute and p.op not in ("input", "output"):
                producer_bits[src] = 0
    for src in producer_bits:  # widest reader among ALL its compute consumers (new bits)
        readers = [g.nodes[d]["layer"] for d in g.successors(src)]
        b = max(la.a_bits for la in readers if la.is_compute)
        p = g.nodes[src]["layer"]
        if p.o_bits != b:
            g.nodes[src]["layer"] = dataclasses.replace(p, o_bits=b)
    return Workload(g, name=workload.name, batch=workload.batch, input_shape=workload.input_shape)
