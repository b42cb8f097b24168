"""Benchmark `dse.sim.simulate`: wall time, SimPy events and peak memory per design point.

    python benchmarks/bench_simulate.py [--repeats 7]

Workloads are extracted once in a child process (torch lives there) and saved as JSON; this
process loads them without torch, as a search worker would. For each case it prints the median
wall time with cold caches (a new design: every layer re-planned) and warm caches (the same design
again, e.g. a search revisiting a point), the SimPy events processed, the peak Python heap during
one run (tracemalloc) and this process's peak RSS. Falls back to the hand-built ResNet-50 and
AlexNet graphs of tests/dse/test_sim_helpers.py (SCALE-Sim's layer tables) without the zoo.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arch.spec import Accelerator  # noqa: E402
from dse import simulate  # noqa: E402
from dse.sim import mapping  # noqa: E402

_EXTRACT = """
import json, sys
import workloads
from workloads import zoo
out = sys.argv[1]
for name in ("resnet50", "alexnet"):
    model = zoo.get(name)
    probe = workloads.extract(model, zoo.input_shape(name), name=name)
    probe.save(f"{out}/{name}_16.json")
    comp = [la.name for la in probe if la.is_compute]
    over = {comp[0]: 8, comp[-1]: 8}  # first/last layers at 8 bits (paper Section 7.2)
    wl = workloads.extract(model, zoo.input_shape(name), default_bits=2, overrides=over, name=name)
    wl.save(f"{out}/{name}.json")
"""


def workloads_from_zoo(tmp: Path) -> dict[str, object] | None:
    """Extract in a child process; load the JSON here (no torch in this process)."""
    proc = subprocess.run([sys.executable, "-c", _EXTRACT, str(tmp)], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"[zoo extraction failed, using hand-built graphs]\n{proc.stderr[-500:]}")
        return None
    spec = importlib.util.spec_from_file_location("_wg", ROOT / "workloads" / "graph.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_wg"] = mod
    spec.loader.exec_module(mod)  # workloads/graph.py itself needs no torch
    return {name: mod.Workload.from_json(json.loads((tmp / f"{name}.json").read_text()))
            for name in ("resnet50", "alexnet", "resnet50_16")}


def workloads_hand_built() -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("_simkit", ROOT / "tests/dse/test_sim_helpers.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {"resnet50": mod.resnet50_graph(bits=(2, 2), first_last=(8, 8)),
            "alexnet": mod.alexnet_graph(bits=(2, 2), first_last=(8, 8)),
            "resnet50_16": mod.resnet50_graph(bits=(16, 16))}


def sysml19(mac_bits: int, dram_gbps: float) -> Accelerator:
    try:
        from arch.presets import sysml19 as preset

        return preset(mac_bits=mac_bits, dram_gbps=dram_gbps)
    except ImportError:  # the paper's template: 8x64 cores, 1 GHz, 16 MiB SRAM in all
        cores = {16: 8, 8: 16, 4: 32, 2: 64}[mac_bits]
        return Accelerator(cores=cores, rows=8, cols=64, mac_bits=(mac_bits, mac_bits),
                           freq_ghz=1.0, sram_kib=16 * 1024 / cores, dram_gbps=dram_gbps)


def clear_caches() -> None:
    mapping._plan_compute.cache_clear()
    mapping._tile_gemm.cache_clear()


def bench(label: str, wl: object, acc: Accelerator, repeats: int,
          **options: object) -> dict[str, float]:
    cold, warm = [], []
    res = None
    for _ in range(repeats):
        clear_caches()
        t = time.perf_counter()
        res = simulate(wl, acc, **options)  # type: ignore[arg-type]
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        simulate(wl, acc, **options)  # type: ignore[arg-type]
        warm.append(time.perf_counter() - t)
    clear_caches()
    tracemalloc.start()
    simulate(wl, acc, **options)  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert res is not None
    row = {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm),
           "events": res.events, "heap_mb": peak / 2**20, "latency_ms": res.latency_s * 1e3,
           "images_per_s": res.images_per_s, "utilization": res.utilization,
           "dram_mb": res.dram_bytes / 1e6}
    if options:
        label += " [" + ", ".join(f"{k}={v}" for k, v in options.items()) + "]"
    print(f"{label:<64} cold {row['cold_s'] * 1e3:7.1f} ms  warm {row['warm_s'] * 1e3:6.1f} ms  "
          f"events {res.events:6d}  heap {row['heap_mb']:5.1f} MB  | latency "
          f"{row['latency_ms']:.3f} ms, util {res.utilization:.3f}, DRAM {row['dram_mb']:.1f} MB")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wls = workloads_from_zoo(Path(tmp)) or workloads_hand_built()
    rn, ax = wls["resnet50"], wls["alexnet"]
    print(f"workloads: {rn!r}; {ax!r}")
    a2 = sysml19(2, 32.0)
    for fidelity in ("layer", "tile"):
        for prefetch in (False, True):
            bench(f"ResNet-50, {a2.cores} cores 2-bit, 32 GB/s", rn, a2, args.repeats,
                  fidelity=fidelity, prefetch=prefetch)
    bench(f"AlexNet,   {a2.cores} cores 2-bit, 32 GB/s", ax, a2, args.repeats)
    a16 = sysml19(16, 32.0)
    bench(f"ResNet-50 16-bit, {a16.cores} cores 16-bit, 32 GB/s", wls["resnet50_16"], a16,
          args.repeats)
    big = dataclasses.replace(a2, cores=256, name="256-core")
    bench("ResNet-50, 256 cores 2-bit, 32 GB/s", rn, big, args.repeats)
    one = Accelerator(cores=1, rows=8, cols=64, mac_bits=(16, 16), sram_kib=2048.0,
                      dram_gbps=float("inf"), dram_latency_ns=0.0, name="scalesim-like")
    row = bench("ResNet-50 16-bit, 1 core 8x64 OS (SCALE-Sim)", wls["resnet50_16"], one,
                args.repeats)
    print(f"SCALE-Sim v3 took 2106 s (OS) / 988 s (WS) for ResNet-50 on one 8x64 array on this "
          f"kind of machine: {2106 / row['cold_s']:.0f}x slower than this run (cold).")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss_mb:.0f} MB (torch imported: {'torch' in sys.modules})")


if __name__ == "__main__":
    main()
