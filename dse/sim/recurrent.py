"""A recurrent GEMM: ``T`` dependent GEMMs of ``M / T`` rows, one after another.

An LSTM/GRU/RNN layer's hidden-to-hidden GEMM (`workloads.composite`, ``hh``) is recorded as one
GEMM of M = N*T rows (N sequences, T steps) with ``meta["steps"] = T``: step t reads the hidden
state step t-1 wrote, so its T row blocks cannot run side by side on the array or on other
cores, and each pays the array's fill and drain again. Played as one big GEMM, the steps would
share folds (one fill and drain for up to ``rows`` steps) and split across cores by time step -
neither is possible.

`plan_compute` (`dse.sim.mapping`) therefore plans one step - the layer with M / T rows, its
split over the cores and tiling the best for that step - and `repeat_steps` plays it T times on
the same cores (`LayerPlan` of the whole layer):

* cycles, pipeline steps (tiles), MACs, SRAM accesses: T times one step's (MACs conserved:
  T x M/T x N x K, the whole layer's);
* DRAM inputs and outputs: T times one step's - each step reads its own rows and writes its own
  outputs, so together the whole tensors, as the one big GEMM moved them;
* DRAM weights: once when a core's weights of one step fit in its free SRAM beside the step's
  tile buffers (they are the same weights every step, loaded by the first step and kept), else
  T times (streamed again each step). Kept weights occupy that SRAM for the whole layer: the plan
  says so in ``held_bytes`` (unified pool), and `dse.sim.simulate`'s ledgers reserve them with
  the tile buffers (``LayerPlan.reserve_bytes``), so no resident tensor or staged weight is
  placed in the space they hold;
* the on-load is the first step's, the off-load the last step's, everything in between streams
  (overlapped with compute when the step's tiles are double-buffered).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dse.sim.mapping import CoreTask, LayerPlan
    from workloads.graph import Layer

__all__ = ["layer_steps", "repeat_steps", "step_layer"]


def layer_steps(layer: Layer) -> int:
    """``meta["steps"]`` of a compute layer (1 when absent); ValueError naming the layer when it
    is not a positive integer or does not divide the GEMM's rows."""
    steps = layer.meta.get("steps", 1) if layer.meta else 1
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"layer {layer.name!r}: meta['steps']={steps!r} is not allowed; "
                         "expected an integer >= 1 (dependent GEMMs the layer's rows split into)")
    if steps > 1 and (layer.ho * layer.wo) % steps and layer.n % steps:
        raise ValueError(f"layer {layer.name!r}: meta['steps']={steps} is not allowed; expected "
                         f"a divisor of the GEMM's rows (n={layer.n} x ho={layer.ho} x "
                         f"wo={layer.wo}) along n or ho x wo")
    return steps


def step_layer(layer: Layer, steps: int) -> Layer:
    """One of the ``steps`` GEMMs of ``layer``: its rows, MACs, inputs, outputs and vector work
    divided by ``steps`` (rows taken from the spatial dims ho x wo, else from the batch n)."""
    one = dataclasses.replace(
        layer, macs=layer.macs // steps, vector_ops=layer.vector_ops // steps,
        input_elems=math.ceil(layer.input_elems / steps),
        output_elems=math.ceil(layer.output_elems / steps), meta={})
    if layer.ho % steps == 0:
        return dataclasses.replace(one, ho=layer.ho // steps, h=max(1, layer.h // steps))
    if (layer.ho * layer.wo) % steps == 0:
        return dataclasses.replace(one, ho=1, wo=layer.ho * layer.wo // steps, h=1,
                                   w=max(1, layer.h * layer.w // steps))
    return dataclasses.replace(one, n=layer.n // steps)


def repeat_steps(plan: LayerPlan, layer: Layer, steps: int,
                 free_bytes: int | tuple[int, int, int]) -> LayerPlan:
    """The whole ``layer``: ``plan`` (one step) played ``steps`` times on the same cores
    (module docstring). ``free_bytes``: the SRAM per core the step was tiled into."""
    split = isinstance(free_bytes, tuple)
    room = free_bytes[1] if isinstance(free_bytes, tuple) else free_bytes - plan.buffer_bytes
    held = [t.dram_weights <= room for t in plan.tasks]
    tasks = tuple(_repeat(t, steps, held=h) for t, h in zip(plan.tasks, held, strict=True))
    # unified pool: the held weights occupy a core's SRAM beside its tiles for all T steps, and
    # the ledger must reserve them (`LayerPlan.reserve_bytes`); split buffers: the filter
    # buffer holds them, which no ledger shares
    kept = 0 if split else max((t.dram_weights for t, h in zip(plan.tasks, held, strict=True)
                                if h), default=0)
    return dataclasses.replace(plan, name=layer.name, tasks=tasks, macs=layer.macs,
                               ideal_cycles=plan.ideal_cycles * steps, held_bytes=kept)


def _repeat(t: CoreTask, steps: int, *, held: bool) -> CoreTask:
    weights = t.dram_weights if held else t.dram_weights * steps
    inputs, outputs = t.dram_inputs * steps, t.dram_outputs * steps
    dram = weights + inputs + outputs
    step_dram = t.dram_weights + t.dram_inputs + t.dram_outputs
    return dataclasses.replace(
        t, tiles=t.tiles * steps, macs=t.macs * steps, compute_cycles=t.compute_cycles * steps,
        vector_cycles=t.vector_cycles * steps,
        stream_bytes=max(0, dram - t.onload_bytes - t.offload_bytes),
        sram_accesses=t.sram_accesses * steps,
        sram_bits=(t.sram_bits - 8 * step_dram) * steps + 8 * dram,
        dram_weights=weights, dram_inputs=inputs, dram_outputs=outputs)
