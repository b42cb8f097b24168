"""Multi-core schedules: a stream of images through core groups (`simulate`'s ``schedule``).

`dse.sim.simulate` plays the whole batch as one tensor on all cores, layer by layer. Here the
cores are split into groups (``groups=`` equal or explicit core counts, or the accelerator's own
heterogeneous ``core_groups``, `arch.groups`) and ``batch`` images flow through them in
micro-batches of ``micro_batch`` images (default 1; "image k" below is micro-batch k, and the
whole micro-batch is one tensor, as the batch is layer by layer):

* ``pipeline``: contiguous stages of layers, stage g on group g (`balance` by estimated stage time,
  or the user's ``stages={layer: group}``, `user_stages`). Each group is one SimPy process that
  takes image k once it has finished image k-1 and every group it feeds has a free input slot (at
  most ``buffer_images`` images wait in a group's input buffer: back-pressure), then plays its
  layers (`dse.sim.layer.run_layer`, the same engine as layer-by-layer, on the group's `CorePool`).
  Fill, drain, bubbles and blocking come out of these events.
* ``data_parallel``: every group runs whole images; a free group takes the next image.
* ``layer_by_layer`` on core groups: each layer on its group, image k starting once image k-1 has
  finished (a pipeline with one image in flight).

All groups share the DRAM (`dse.sim.dram.MemorySystem`). A tensor that another group reads crosses
the on-chip network (`dse.sim.network.Network`, ``noc`` = bus | mesh) from the producer into the
consumer's input buffer (each group sends its tensors one after another, in order, as one DMA
engine would), or, with ``noc="none"``, is stored to DRAM and loaded back. The input buffer takes
the receiver's SRAM for the whole stream (`dse.sim.group_plan.input_buffers`): as many images as
fit, at most ``buffer_images``; when not one fits, its inbound tensors go through DRAM as with
``noc="none"``. Weights that fit beside a group's working set are loaded for the first image and
stay on chip for the rest of the stream (`dse.sim.simulate`'s ``persistent_weights`` from the
second image on): a stage owns its layers. Each micro-batch is planned as a batch of its own.

Results: ``latency_s`` is the first image's latency, ``images_per_s`` the steady-state rate
(completions after the first wave over the time they took), ``makespan_s`` the whole stream;
``stages`` has one row per group (cores, busy, stalled, starved, blocked) beside the per-layer
table, which sums each layer over the images.

The steps, one module each, run in this order by `run_schedule`:

1. `dse.sim.partition` - the core groups (`group_accelerators`) and which layers each runs
   (`assign_layers`: `user_stages` or `balance`);
2. `dse.sim.group_plan` - each group's subgraph with placeholders for tensors from other groups,
   its input buffer (images on chip, or spilled to DRAM) and its plans for the first and the
   later images;
3. this module - the SimPy processes of the stream: a group's stage (or a data-parallel worker)
   playing image after image, the sends over the on-chip network, back-pressure;
4. `dse.sim.stream_results` - the `SimResult`: per-layer rows summed over the images, the
   ``stages`` table (`STAGE_COLUMNS`), latency, steady-state rate and energy.

`STAGE_COLUMNS`, `balance`, `group_accelerators` and `user_stages` are re-exported here.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from arch.spec import Accelerator
from dse.sim.dram import CountingEnvironment
from dse.sim.group_plan import Group, input_buffers, plan_groups
from dse.sim.layer import Record
from dse.sim.network import Network
from dse.sim.partition import assign_layers, balance, group_accelerators, user_stages
from dse.sim.results import SimResult
from dse.sim.simulate import _prepare, memory_system, spawn
from dse.sim.stream_results import STAGE_COLUMNS, collect_stream

if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["STAGE_COLUMNS", "balance", "group_accelerators", "run_schedule", "user_stages"]


def run_schedule(workload: Workload, acc: Accelerator, batch: int, em: Any,
                 options: dict[str, Any], *, schedule: str, stages: dict[str, int] | None,
                 groups: int | tuple[int, ...] | None, buffer_images: int,
                 micro_batch: int = 1) -> SimResult:
    """Simulate ``batch`` images streaming through core groups in micro-batches of
    ``micro_batch`` images (module docstring)."""
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1 \
            or batch % micro_batch:
        raise ValueError(f"micro_batch={micro_batch!r} is not allowed; expected an integer >= 1 "
                         f"that divides batch={batch}")
    steps = batch // micro_batch
    nodes, order = _prepare(workload, micro_batch)  # each micro-batch is a batch of its own
    # 1. the core groups and which layers each runs (`dse.sim.partition`)
    gaccs = group_accelerators(acc, groups, stages, schedule)
    assign = assign_layers(workload, nodes, order, gaccs, options, schedule=schedule,
                           stages=stages)  # None: data-parallel, whole images per group
    # 2. each group's input buffer, graph and plans (`dse.sim.group_plan`)
    via_noc = acc.noc != "none" and assign is not None and len(gaccs) > 1
    # images each group's input buffer holds on chip (0: its inbound tensors spill to DRAM)
    want = 1 if schedule == "layer_by_layer" else buffer_images
    slots, spill = input_buffers(nodes, order, assign, gaccs, options, want, via_noc)
    env = CountingEnvironment()
    mem = memory_system(env, acc)
    noc = Network(env, topology=acc.noc, groups=len(gaccs),
                  bytes_per_s=acc.noc_bytes_per_cycle * acc.freq_hz,
                  hop_s=acc.noc_hop_cycles / acc.freq_hz,
                  multicast=acc.noc_multicast) if via_noc else None
    grps = plan_groups(env, nodes, order, assign, gaccs, options, via_noc, slots, spill)
    # 3. the stream: one SimPy process per group (a stage or a data-parallel worker)
    stage_done = [[env.event() for _ in range(steps)] for _ in grps]
    image_done = [env.event() for _ in range(steps)]
    finished = [0.0] * steps
    arrive = {(k, n, h): env.event() for k in range(steps) for grp in grps
              for n, dsts in grp.sends.items() for h in dsts}
    outbox = [simpy.Resource(env, capacity=1) for _ in grps]
    downstream = [sorted({h for dsts in grp.sends.values() for h in dsts}) for grp in grps]

    def send(k: int, grp: Group, n: str, dsts: list[int],
             ready: simpy.Event) -> Generator[simpy.Event, Any, None]:
        yield ready  # a spilled receiver's copy is in DRAM once its producer has finished
        on_noc = [h for h in dsts if h not in spill]
        if noc is not None and on_noc:
            nbytes = nodes[n].out_bytes
            with outbox[grp.index].request() as turn:  # one sending engine per group, FIFO
                yield turn
                yield noc.send(grp.index, on_noc, nbytes)
            grp.stats["noc_out_bytes"] += nbytes
            for h in on_noc:
                grps[h].stats["noc_in_bytes"] += nbytes
        for h in dsts:
            arrive[(k, n, h)].succeed()

    def play(grp: Group, k: int, t0: float) -> Generator[simpy.Event, Any, None]:
        t1 = env.now
        sub, pl = grp.first if k == 0 else grp.steady
        recs = {n: Record() for n in pl.plans}
        extra = {p: [arrive[(k, p, grp.index)]] for p in grp.fed}
        done = spawn(env, sub, grp.order, pl, grp.acc, grp.pool, mem, recs, options, extra)
        for n, dsts in grp.sends.items():
            env.process(send(k, grp, n, dsts, done[n]))
        if done:
            yield simpy.AllOf(env, list(done.values()))
        start = min((r.start_s for r in recs.values()), default=env.now)
        st = grp.stats
        st["images"] += micro_batch
        st["blocked_s"] += t1 - t0
        st["starved_s"] += max(0.0, start - t1)
        st["busy_s"] += env.now - start if recs else 0.0
        st["compute_s"] += sum(p.compute_cycles for p in pl.plans.values()) / grp.acc.freq_hz
        grp.runs.append((k, recs, sub, pl))

    def stage(grp: Group) -> Generator[simpy.Event, Any, None]:
        for k in range(steps):
            t0 = env.now
            # a free slot in each receiver's input buffer: the images it holds on chip, or
            # buffer_images in DRAM when it spills
            waits = [stage_done[h][k - (slots[h] or buffer_images)]
                     for h in downstream[grp.index] if k >= (slots[h] or buffer_images)]
            if schedule == "layer_by_layer" and k > 0:
                waits.append(image_done[k - 1])
            if waits:
                yield simpy.AllOf(env, waits)
            yield from play(grp, k, t0)
            stage_done[grp.index][k].succeed()

    def image(k: int) -> Generator[simpy.Event, Any, None]:
        yield simpy.AllOf(env, [stage_done[g][k] for g in range(len(grps))])
        finished[k] = env.now
        image_done[k].succeed()

    queue = iter(range(steps))

    def worker(grp: Group) -> Generator[simpy.Event, Any, None]:
        for k in queue:  # a free group takes the next image
            t0 = env.now
            yield from play(grp, k, t0)
            finished[k] = env.now
            image_done[k].succeed()

    for grp in grps:
        env.process(worker(grp) if assign is None else stage(grp))
    if assign is not None:
        for k in range(steps):
            env.process(image(k))
    env.run()
    # 4. the result (`dse.sim.stream_results`)
    for grp in grps:
        grp.stats["buffer_images"] = slots[grp.index]
    return collect_stream(workload, acc, batch, grps, finished, env, mem, noc, em,
                          {**options, "schedule": schedule, "groups": len(grps),
                           "buffer_images": buffer_images, "micro_batch": micro_batch},
                          lanes=len(grps) if assign is None else 1)
