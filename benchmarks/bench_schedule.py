"""Benchmark multi-core schedules (`dse.sim.schedule`): a 16-image ResNet-50 stream on 64 cores.

    python benchmarks/bench_schedule.py [--repeats 5] [--images 16]

For ResNet-50 (2-bit body, 16-bit first/last layers; the hand-built graph of
tests/dse/test_sim_helpers.py, SCALE-Sim's layer table, so no torch is needed) on
``sysml19(2, 32)`` (64 cores, 32 GB/s) it prints, per schedule and group count, the median warm
wall time of one `simulate` call at layer fidelity, the SimPy events, the steady-state
images/s, the first image's latency and the whole stream's time. The issue's target: a 16-image
pipeline in 4-8 stages in under 0.5 s warm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "dse"))

from test_sim_helpers import resnet50_graph  # noqa: E402

from arch import sysml19  # noqa: E402
from dse import simulate  # noqa: E402

CASES = (("layer_by_layer", None), ("pipeline", 4), ("pipeline", 8), ("data_parallel", 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--images", type=int, default=16)
    args = ap.parse_args()
    wl = resnet50_graph((2, 2), (16, 16))
    acc = sysml19(2, 32)
    print(f"ResNet-50 W2A2 (first/last 16-bit), {args.images} images, {acc.name}: {acc.cores} "
          f"cores, {acc.dram_gbps:g} GB/s")
    print(f"{'schedule':<16}{'groups':>7}{'warm s':>9}{'events':>8}{'images/s':>10}"
          f"{'first ms':>10}{'stream ms':>10}")
    for schedule, groups in CASES:
        kw = {} if groups is None else {"schedule": schedule, "groups": groups}
        res = simulate(wl, acc, batch=args.images, **kw)  # warm the mapper's caches
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = simulate(wl, acc, batch=args.images, **kw)
            times.append(time.perf_counter() - t0)
        print(f"{schedule:<16}{groups or '-':>7}{statistics.median(times):>9.3f}{res.events:>8}"
              f"{res.images_per_s:>10.0f}{res.latency_s * 1e3:>10.3f}"
              f"{res.makespan_s * 1e3:>10.3f}")


if __name__ == "__main__":
    main()
