"""The execution of one layer on its cores, at either fidelity, as SimPy processes.

A layer arrives here as a `LayerPlan` (which cores do what, `dse.sim.mapping`) and, at tile
fidelity, as a tile loop per class of identical cores (`Unit` runs of tiles). `run_layer` is the
one place a layer executes:

1. **Prefetch** (optional): as soon as every predecessor has issued its last load, the layer's
   first weights (and inputs that are already in DRAM) start to load into the buffer space the
   predecessor's last tile leaves free (`PrefetchRule`), before the layer has its cores.
2. Wait for the predecessors' outputs, take ``cores_used`` cores from the `CorePool`.
3. Play the layer:
   * ``layer`` fidelity - one lock-step pipeline for all cores (`_lockstep`): on-load, compute of
     all steps but the last overlapped with (double) or after (single) the streamed bytes, the
     last step, off-load. Few events; the fast mode for searches.
   * ``tile`` fidelity - per core class, three processes (`_tile_loop`): a *loader* fetches each
     unit's ifmap/filter bytes into a free half of the double buffer (a slot; one slot when
     single-buffered), the *array* computes a unit once its first tile is in and the previous
     unit is done, and waits for a free ofmap slot first (a full output buffer blocks it), and a
     *drainer* stores each unit's outputs as they are produced. A unit of ``tiles`` identical
     tiles is exact for its two-stage pipeline: the array finishes at max(start + (tiles - 1) x
     tile time, last load done) + one tile time. Stalls come out of these events: slots, DRAM
     fair shares with every other core and layer in flight, and the ofmap buffer.
4. Hand the cores back; record start, loaded, storing and end times for the per-layer table.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from dse.sim.cores import CorePool
from dse.sim.dram import MemorySystem
from dse.sim.mapping import CoreTask, LayerPlan
from dse.sim.results import Interval

__all__ = ["FIDELITIES", "Record", "Unit", "run_layer", "units_of_task"]

FIDELITIES = ("layer", "tile")
"""``layer``: one lock-step pipeline per layer (fast, for searches); ``tile``: each core class's
tile loop as events, with buffers (see the module docstring)."""

PREFETCH_PRIORITY = 1e-3
"""Fair-share weight of a prefetch stream per core, relative to a demand stream's 1: a prefetch
takes the DRAM bandwidth that running layers leave idle and yields it back at once when they ask
(the usual low-priority DMA queue), so prefetching never slows the layers that run."""

MAX_BODY_UNITS = 4
"""Tile fidelity plays a core class's middle tiles in at most this many runs (besides the exact
first and last tile): each run is exact for its own pipeline, and the run boundaries are where the
bandwidth share is re-read - more runs follow contention more closely, at ~15 events each."""


@dataclass(slots=True)
class Record:
    """What one layer did, in seconds of simulated time."""

    start_s: float = 0.0
    loaded_s: float = 0.0  # the first compute started (the on-load ended)
    storing_s: float = 0.0  # the last compute ended (the off-load started)
    end_s: float = 0.0
    onload_s: float = 0.0
    offload_s: float = 0.0
    intervals: list[Interval] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Unit:
    """A run of ``tiles`` identical tiles of one core class: per tile ``compute_s`` seconds on the
    array, ``ifmap_bytes`` / ``filter_bytes`` loaded before it and ``ofmap_bytes`` stored after
    it (bytes summed over the class's cores as they cross the DRAM interface)."""

    tiles: int
    compute_s: float
    ifmap_bytes: float
    filter_bytes: float
    ofmap_bytes: float


def _spread(total: float, first: float, last: float, body_tiles: int) -> float:
    return max(0.0, total - first - last) / body_tiles if body_tiles > 0 else 0.0


def units_of_task(task: CoreTask, freq_hz: float) -> list[Unit]:
    """The tile loop of one core class of a generic (non-SCALE-Sim) plan: the first tile with its
    on-load, the middle tiles with the streamed bytes spread evenly (in at most `MAX_BODY_UNITS`
    runs), the last tile with its off-load. Bytes are the class's DRAM bytes (multicast applied)."""
    tiles = max(1, task.tiles)
    step_s = (task.compute_cycles + task.vector_cycles) / freq_hz / tiles
    by_op = task.class_bytes()
    c = task.count
    on_in = c * task.onload_input_bytes / task.input_sharers
    on_w = c * (task.onload_bytes - task.onload_input_bytes) / task.weight_sharers
    off = min(by_op["outputs"], c * task.offload_bytes)
    if tiles == 1:
        return [Unit(1, step_s, by_op["inputs"], by_op["weights"], by_op["outputs"])]
    body = tiles - 2
    per_in = _spread(by_op["inputs"], on_in, 0.0, body)
    per_w = _spread(by_op["weights"], on_w, 0.0, body)
    per_out = _spread(by_op["outputs"], 0.0, off, body)
    if body == 0:  # two tiles: whatever is not on-load streams in with the last one
        return [Unit(1, step_s, on_in, on_w, by_op["outputs"] - off),
                Unit(1, step_s, by_op["inputs"] - on_in, by_op["weights"] - on_w, off)]
    units = [Unit(1, step_s, on_in, on_w, 0.0)]
    runs = min(MAX_BODY_UNITS, body)
    for i in range(runs):
        n = body // runs + (1 if i < body % runs else 0)
        units.append(Unit(n, step_s, per_in, per_w, per_out))
    units.append(Unit(1, step_s, 0.0, 0.0, off))
    return units


@dataclass(frozen=True, slots=True)
class PrefetchRule:
    """What a layer may load before it has its cores: ``bytes_by_operand`` of its first tile
    (summed over its cores), taken once ``after`` (every predecessor's last load) has fired."""

    bytes_by_operand: dict[str, float]
    after: tuple[simpy.Event, ...]
    staged: bool = False
    """All of the layer's weights (its plan then streams none), not just its first tile's: the
    first ``head_bytes`` of them gate its first compute, the rest only its last."""
    head_bytes: float = 0.0


class _Prefetch:
    """A layer's prefetch in flight: one low-priority stream per operand (`PREFETCH_PRIORITY`),
    each its head first, then its rest. ``head`` fires when every head is in, ``all`` when
    everything is; `promote` turns the streams still running into demand streams."""

    def __init__(self, env: simpy.Environment, mem: MemorySystem, amounts: dict[str, float],
                 heads: dict[str, float], cores: int) -> None:
        self.env, self.mem, self.cores = env, mem, cores
        self.weight = cores * PREFETCH_PRIORITY
        self.current: dict[str, simpy.Event] = {}
        streams = [(op, b, min(b, heads.get(op, b)) or b) for op, b in amounts.items() if b > 0]
        head_evs = [env.event() for _ in streams]
        procs = [env.process(self._stream(op, b, h, ev))
                 for (op, b, h), ev in zip(streams, head_evs)]
        self.head = simpy.AllOf(env, head_evs)
        self.all = simpy.AllOf(env, procs)

    def _stream(self, op: str, total: float, head: float,
                head_in: simpy.Event) -> Generator[simpy.Event, Any, None]:
        for i, nbytes in enumerate((head, total - head)):
            if nbytes > 0:
                ev = self.mem.transfer(op, nbytes, self.weight, latency=i == 0)
                self.current[op] = ev
                yield ev
            if i == 0:
                head_in.succeed()

    def promote(self) -> None:
        self.weight = float(self.cores)
        for op, ev in self.current.items():
            if not ev.triggered:
                self.mem.promote(op, ev, self.weight)


# --------------------------------------------------------------------------------------------------
def run_layer(env: simpy.Environment, name: str, plan: LayerPlan | None, units: list[list[Unit]],
              deps: list[simpy.Event], done: simpy.Event, loads_done: simpy.Event,
              pool: CorePool, mem: MemorySystem, rec: Record | None, *, freq_hz: float,
              fidelity: str, segments: int, prefetch: PrefetchRule | None,
              slots: int, started: simpy.Event | None = None,
              ) -> Generator[simpy.Event, Any, None]:
    """One graph node (module docstring): prefetch, wait, take cores, play, free them."""
    flight: _Prefetch | None = None
    pre = {"ifmap": 0.0, "filter": 0.0}  # first-tile bytes the prefetch brings
    if prefetch is not None and plan is not None and rec is not None:
        if prefetch.after:
            yield simpy.AllOf(env, prefetch.after)
        heads = {"filter": prefetch.head_bytes} if prefetch.staged else {}
        flight = _Prefetch(env, mem, prefetch.bytes_by_operand, heads, plan.cores_used)
        if not prefetch.staged:  # a staged plan streams no weights: nothing to subtract
            pre.update(prefetch.bytes_by_operand)
    if deps:
        yield simpy.AllOf(env, deps) if len(deps) > 1 else deps[0]
    if plan is None or rec is None:
        for ev in (started, loads_done, done):
            if ev is not None:
                ev.succeed()
        return
    with pool.request(plan.cores_used) as grant:
        yield grant.event
        if started is not None:
            started.succeed()
        pre_ev = pre_all = None
        if flight is not None:
            flight.promote()  # the layer now waits for it
            pre_ev, pre_all = flight.head, flight.all
        if fidelity == "tile":
            yield from _tiles(env, name, plan, units, grant.ids, mem, rec, pre, pre_ev,
                              loads_done, slots, pre_all)
        else:
            yield from _lockstep(env, name, plan, grant.ids, mem, rec, freq_hz, segments, pre,
                                 pre_ev, loads_done, pre_all)
    done.succeed()


# -- layer fidelity --------------------------------------------------------------------------------
def _lockstep(env: simpy.Environment, name: str, plan: LayerPlan, ids: tuple[int, ...],
              mem: MemorySystem, rec: Record, freq_hz: float, segments: int,
              pre: dict[str, float], pre_ev: simpy.Event | None,
              loads_done: simpy.Event,
              pre_all: simpy.Event | None = None) -> Generator[simpy.Event, Any, None]:
    """The lock-step phases of one layer on cores ``ids``: the cores of a layer advance together;
    a core with less work (the remainder of an uneven split) idles at the end of each compute
    phase. Each DRAM phase is one flow of the bytes summed over the cores (weight: core count)."""
    rec.start_s = t0 = env.now
    cycles, steps, db = plan.lockstep()
    on_ops, stream_ops, off = plan.operand_phases()
    on_ops = {k: max(0.0, v - pre.get(k, 0.0)) for k, v in on_ops.items()}
    w = plan.cores_used
    compute_s = cycles / freq_hz
    tail_s = compute_s / max(1, steps)  # the last step computes after every load
    body_s = compute_s - tail_s
    groups = [(tuple(ids[i:i + t.count]), (t.compute_cycles + t.vector_cycles) / freq_hz, t.macs)
              for i, t in zip(_offsets(plan.tasks), plan.tasks)]
    everyone = tuple(ids)

    def compute(start: float, frac_of_body: float, last: bool) -> None:
        share = 1 / max(1, steps) if last else (1 - 1 / max(1, steps)) * frac_of_body
        for cores, c_s, macs in groups:
            if c_s * share > 0:
                rec.intervals.append(Interval(cores, "compute", name, start, start + c_s * share,
                                              macs * share))

    ev = mem.transfer_many(on_ops, w)
    waits = [e for e in (ev, pre_ev) if e is not None]
    if waits:
        yield simpy.AllOf(env, waits)
        rec.intervals.append(Interval(everyone, "dma", name, t0, env.now))
    rec.onload_s = env.now - t0
    rec.loaded_s = env.now
    seg_s = body_s / segments
    for i in range(segments):
        t1 = env.now
        seg = {k: v / segments for k, v in stream_ops.items()}
        # one DMA stream per layer: only its first request pays the DRAM latency
        xfer = mem.transfer_many(seg, w, latency=i == 0)
        if db:
            evs = [e for e in (env.timeout(seg_s) if seg_s > 0 else None, xfer) if e]
            if evs:
                yield simpy.AllOf(env, evs)
            compute(t1, 1 / segments, last=False)
            if xfer is not None:
                rec.intervals.append(Interval(everyone, "dma", name, t1, env.now))
        else:
            if xfer is not None:
                yield xfer
                rec.intervals.append(Interval(everyone, "dma", name, t1, env.now))
            t2 = env.now
            if seg_s > 0:
                yield env.timeout(seg_s)
                compute(t2, 1 / segments, last=False)
    if pre_all is not None:
        yield pre_all  # the last step needs every weight
    loads_done.succeed()
    if tail_s > 0:
        t3 = env.now
        yield env.timeout(tail_s)
        compute(t3, 1.0, last=True)
    rec.storing_s = env.now
    if off > 0:
        t4 = env.now
        yield mem.transfer("ofmap", off, w)
        rec.intervals.append(Interval(everyone, "dma", name, t4, env.now))
        rec.offload_s = env.now - t4
    rec.end_s = env.now


def _offsets(tasks: tuple[CoreTask, ...]) -> list[int]:
    out, i = [], 0
    for t in tasks:
        out.append(i)
        i += t.count
    return out


# -- tile fidelity ---------------------------------------------------------------------------------
def _tiles(env: simpy.Environment, name: str, plan: LayerPlan, units: list[list[Unit]],
           ids: tuple[int, ...], mem: MemorySystem, rec: Record, pre: dict[str, float],
           pre_ev: simpy.Event | None, loads_done: simpy.Event,
           slots: int, pre_all: simpy.Event | None = None) -> Generator[simpy.Event, Any, None]:
    rec.start_s = env.now
    first: list[float] = []
    last: list[float] = []
    loaders: list[simpy.Event] = []
    procs = []
    for (off, task), cls_units in zip(zip(_offsets(plan.tasks), plan.tasks), units):
        cores = tuple(ids[off:off + task.count])
        loaded = env.event()
        loaders.append(loaded)
        procs.append(env.process(_tile_loop(env, name, cls_units, cores, task, mem, rec, pre,
                                            pre_ev, loaded, slots, first, last, pre_all)))
        pre = {"ifmap": 0.0, "filter": 0.0}  # the prefetch is counted once, by the first class
        pre_ev = None
    yield simpy.AllOf(env, loaders)
    loads_done.succeed()
    yield simpy.AllOf(env, procs)
    rec.loaded_s = min(first, default=rec.start_s)
    rec.storing_s = max(last, default=rec.loaded_s)
    rec.end_s = env.now
    rec.onload_s = rec.loaded_s - rec.start_s
    rec.offload_s = rec.end_s - rec.storing_s


def _tile_loop(env: simpy.Environment, name: str, units: list[Unit], cores: tuple[int, ...],
               task: CoreTask, mem: MemorySystem, rec: Record, pre: dict[str, float],
               pre_ev: simpy.Event | None, loads_done: simpy.Event, slots: int,
               first: list[float], last: list[float],
               pre_all: simpy.Event | None = None) -> Generator[simpy.Event, Any, None]:
    """Loader, array and drainer of one core class (module docstring, step 3)."""
    w = task.count
    track = f"buffer bytes/core, cores {cores[0]}-{cores[-1]}"
    ops = ("ifmap", "filter")
    # one DMA engine per read buffer (SCALE-Sim's separate ports): each fills the free halves of
    # its own buffer in unit order, independently of the other
    in_slots = {op: simpy.Container(env, capacity=slots, init=slots) for op in ops}
    out_slots = simpy.Container(env, capacity=slots, init=slots)
    head = {op: [env.event() for _ in units] for op in ops}  # a unit's first tile is in
    full = {op: [env.event() for _ in units] for op in ops}  # all of its tiles are in

    def loader(op: str) -> Generator[simpy.Event, Any, None]:
        for i, u in enumerate(units):
            yield in_slots[op].get(1)
            per_tile = u.ifmap_bytes if op == "ifmap" else u.filter_bytes
            first_tile = max(0.0, per_tile - pre.get(op, 0.0)) if i == 0 else per_tile
            t0 = env.now
            waits = [e for e in (mem.transfer(op, first_tile, w, latency=i == 0)
                                 if first_tile > 0 else None,
                                 pre_ev if i == 0 else None) if e is not None]
            if waits:
                yield simpy.AllOf(env, waits)
            mem.count(track, per_tile / w)
            head[op][i].succeed()
            if u.tiles > 1 and per_tile > 0:
                yield mem.transfer(op, per_tile * (u.tiles - 1), w, latency=False)
            full[op][i].succeed()
            if env.now > t0:
                rec.intervals.append(Interval(cores, "dma", name, t0, env.now))
        loaded[op].succeed()

    loaded = {op: env.event() for op in ops}
    for op in ops:
        env.process(loader(op))
    def all_loaded(_ev: simpy.Event) -> None:
        loads_done.succeed()

    simpy.AllOf(env, list(loaded.values())).callbacks.append(all_loaded)

    draining = [False]  # the store stream has started: later stores are pipelined behind it

    def drainer(u: Unit) -> Generator[simpy.Event, Any, None]:
        t0 = env.now
        fresh, draining[0] = not draining[0], True
        yield mem.transfer("ofmap", u.ofmap_bytes * u.tiles, w, latency=fresh)
        rec.intervals.append(Interval(cores, "dma", name, t0, env.now))
        mem.count(track, -u.ofmap_bytes / w)
        yield out_slots.put(1)

    drains = []
    macs_per_s = task.macs / max(1e-30, sum(u.tiles * u.compute_s for u in units))
    for i, u in enumerate(units):
        yield simpy.AllOf(env, [head["ifmap"][i], head["filter"][i]])
        if u.ofmap_bytes > 0:  # room for this unit's outputs: a full buffer blocks the array
            yield out_slots.get(1)
        t0 = env.now
        if i == 0:
            first.append(t0)
        loads = [full["ifmap"][i], full["filter"][i]]
        if pre_all is not None and i == len(units) - 1:
            loads.append(pre_all)  # the last tile needs every staged weight
        if u.tiles > 1:
            loads.append(env.timeout((u.tiles - 1) * u.compute_s))
        yield simpy.AllOf(env, loads)
        if u.compute_s > 0:
            yield env.timeout(u.compute_s)
        # the array computed for tiles x compute_s of [t0, now); the rest of it was a stall
        busy = u.tiles * u.compute_s
        if busy > 0:
            rec.intervals.append(Interval(cores, "compute", name, env.now - busy, env.now,
                                          macs_per_s * busy))
        mem.count(track, (u.ofmap_bytes - u.ifmap_bytes - u.filter_bytes) / w)
        for op in ops:
            yield in_slots[op].put(1)
        if u.ofmap_bytes > 0:
            drains.append(env.process(drainer(u)))
    last.append(env.now)
    if drains:
        yield simpy.AllOf(env, drains)
