"""Benchmark: wall time of `workloads.extract` on ResNet-50 at 224x224 (target: < 3 s).

    python benchmarks/bench_extract.py [--model resnet50] [--batch 1] [--repeat 5]

Prints the first (cold: includes torch.fx / meta-kernel warm-up) and the median warm time.
Model construction (weight initialisation) is not counted: it is not part of extraction.
"""

from __future__ import annotations

import argparse
import statistics
import time

from workloads import extract, zoo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50", choices=zoo.names())
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    model = zoo.get(args.model)
    shape = zoo.input_shape(args.model)
    times = []
    for _ in range(1 + args.repeat):
        t0 = time.perf_counter()
        wl = extract(model, shape, batch=args.batch, name=args.model)
        times.append(time.perf_counter() - t0)
    cold, warm = times[0], statistics.median(times[1:]) if args.repeat else float("nan")
    verdict = "OK" if cold < 3.0 else "SLOW"
    print(f"{wl!r}")
    print(f"extract({args.model}, {shape}, batch={args.batch}): cold {cold:.3f} s, "
          f"warm median {warm:.3f} s over {args.repeat} runs  [{verdict}: target < 3 s]")


if __name__ == "__main__":
    main()
