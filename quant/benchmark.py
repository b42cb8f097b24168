"""An accuracy benchmark that can fail: every quantizer formula against its known-wrong variant.

The protocol (:class:`Protocol`) trains a capacity-limited ``digits_cnn`` (quarter width:
4-8-16 channels, ~1.7 k weights) with EVERY layer quantized at W2A2 (the first conv and the
classifier included, ``first_last_bits=2``) from random weights. At full width digits is so easy
for the network that a wrong weight scale costs nothing measurable; at quarter width every
quantization error costs accuracy. Training from random weights makes each quantizer track
weights and activations whose statistics move, which is what SAWB's per-step Eq. 7 and LLSQ's
simulated gradient exist for. ``Protocol.init="paper"`` starts each arm where its paper does
instead (LSQ, LLSQ and CReLU fine-tune from the seed's trained ``fp32`` weights); on validation
it detected fewer controls and was not chosen. Each recipe follows its own
:class:`~quant.procedure.Procedure` (learning rate, decays, phases). The protocol and the
primary measure (the cross-entropy) were chosen on the validation split
(docs/quant_accuracy/controls_protocol.md).

For every seed it trains one arm per:

* ``fp32``, the full-precision network (the W2A2-vs-FP gap);
* each recipe a control breaks (``lsq``, ``pact_sawb``, ``llsq``, ``crelu_binary``), correct;
* each negative control of :mod:`quant.controls`, the same recipe with the wrong formula
  swapped in.

A control and its correct recipe share the seed (same initial weights, data order and first
batch), so the comparison is paired: :func:`paired_t_test` is the one-sided paired t-test of
"the control is worse" (higher cross-entropy, or lower accuracy) across seeds; :func:`holm`
adjusts the family of p-values (both in :mod:`quant.stats`, re-exported here).

Every (arm, seed) result is cached as one JSON file (written atomically) under a folder named
by the protocol's hash, so an interrupted benchmark resumes where it stopped and a changed
protocol never reuses old runs. :mod:`quant.benchmark_report` writes the report;
``benchmarks/accuracy_controls.py`` is the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from quant import controls
from quant.stats import PairedTest, holm, paired_t_test

__all__ = [
    "FP_ARM",
    "QUICK",
    "STANDARD",
    "PairedTest",
    "Protocol",
    "arms_for",
    "holm",
    "invocations",
    "load_results",
    "paired_t_test",
    "record_invocation",
    "run_arm",
    "run_benchmark",
]

FP_ARM = "fp32"
RESULT_FORMAT = 1
INITS = ("scratch", "paper")
DIGITS_CLASSES = 10


@dataclass(frozen=True, slots=True)
class Protocol:
    """What one benchmark run trains (everything that changes a result is here).

    Attributes:
        model: zoo model.
        width: its channel multiplier (``workloads.zoo``; 0.25: quarter width).
        w_bits, a_bits: bits of every quantized arm.
        first_last_bits: bits of the first and last layers (2: all layers quantized).
        epochs: training epochs from random weights.
        batch_size: SGD batch size.
        eval_split: ``"test"`` (the report) or ``"val"`` (choosing the protocol: trains on
            the fit split and scores on the held-out fifth of the training images).
        data: data set name (``quant.data.DATASETS``).
        init: where each quantized arm starts. ``"scratch"``: every arm from random weights.
            ``"paper"``: where its paper starts (``Procedure.from_scratch``): LSQ (Sec. 3),
            LLSQ (Fig. 1) and CReLU (Sec. 4) fine-tune from the same seed's trained ``fp32``
            arm at the procedure's fine-tune learning rate; PACT-SAWB (Sec. 6) trains from
            random weights, exactly as under ``"scratch"`` (those runs are shared).
    """

    model: str = "digits_cnn"
    width: float = 0.25
    w_bits: int = 2
    a_bits: int = 2
    first_last_bits: int = 2
    epochs: int = 10
    batch_size: int = 32
    eval_split: str = "test"
    data: str = "digits"
    init: str = "scratch"

    def __post_init__(self) -> None:
        problems = []
        for name, low, high in (("w_bits", 2, 4), ("a_bits", 2, 4), ("first_last_bits", 2, 32),
                                ("epochs", 1, 1000), ("batch_size", 1, 1 << 16)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                problems.append(f"{name}={v!r} (allowed: int {low}..{high})")
        if isinstance(self.width, bool) or not isinstance(self.width, int | float) or not (
                0 < self.width <= 64):
            problems.append(f"width={self.width!r} (allowed: a number in (0, 64])")
        if self.eval_split not in ("test", "val"):
            problems.append(f"eval_split={self.eval_split!r} (allowed: test, val)")
        if self.init not in INITS:
            problems.append(f"init={self.init!r} (allowed: {', '.join(INITS)})")
        if problems:
            raise ValueError("invalid benchmark protocol: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        """The protocol's fields; ``init`` only when it is not ``"scratch"`` (so protocols from
        before the field existed keep their hash and their cached runs)."""
        d = dataclasses.asdict(self)
        if d["init"] == "scratch":
            del d["init"]
        return d

    def key(self) -> str:
        """Short stable hash of the protocol: the cache folder of its results."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def fine_tunes(self, arm: str) -> bool:
        """Whether ``arm`` starts from its seed's trained ``fp32`` weights."""
        from quant.train_config import procedure_of

        recipe = _arm_recipe(arm)
        return (self.init == "paper" and recipe != FP_ARM
                and not procedure_of(recipe).from_scratch)

    def of_arm(self, arm: str) -> Protocol:
        """The protocol ``arm`` actually runs under: an arm that trains from random weights
        runs exactly as under ``init="scratch"``, so it shares that protocol's cached runs."""
        return self if self.fine_tunes(arm) else dataclasses.replace(self, init="scratch")


STANDARD = Protocol()
"""The reported protocol (docs/quant_accuracy/controls.md)."""
QUICK = Protocol(epochs=1)
"""One epoch: the plumbing end to end in seconds (tests, ``--quick``); detects nothing."""


def arms_for(control_names: Iterable[str]) -> list[str]:
    """``fp32``, the correct recipes the controls break, then the controls (validated)."""
    names = list(control_names)
    for n in names:
        if n not in controls.CONTROLS:
            raise ValueError(f"control={n!r} is not a negative control; allowed: "
                             f"{', '.join(controls.CONTROLS)}")
    recipes = list(dict.fromkeys(controls.CONTROLS[n].recipe for n in names))
    return [FP_ARM, *recipes, *dict.fromkeys(names)]


def _arm_recipe(arm: str) -> str:
    return controls.CONTROLS[arm].recipe if arm in controls.CONTROLS else arm


def _result_path(cache: Path, protocol: Protocol, arm: str, seed: int) -> Path:
    return cache / protocol.of_arm(arm).key() / f"{arm}-s{seed}.json"


def _fp_weights_path(cache: Path, protocol: Protocol, seed: int) -> Path:
    """The trained ``fp32`` arm's float weights, the start of the arms that fine-tune."""
    return cache / protocol.of_arm(FP_ARM).key() / f"{FP_ARM}-s{seed}.pt"


def _curves(model: Any, metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every 0-dim learned quantizer parameter: its per-epoch values, start, optimizer group
    and decay-only values (``quant.train.decay_only_curve`` for clipping levels; a step in the
    ``"scale"`` group takes no decay, so its decay-only value stays at the start)."""
    from quant import hooks
    from quant import train as qtrain

    group = {f"{qn}.{pn}": q.param_group() for qn, q in hooks.quantizers(model)
             for pn, p in q.named_parameters(recurse=False) if p.dim() == 0}
    out = {}
    for name, values in metrics["param_curves"].items():
        g = group.get(name, "weights")
        start = metrics["param_start"][name]
        decay_only = (qtrain.decay_only_curve(metrics, name) if g == "clip"
                      else [start] * len(values))
        out[name] = {"group": g, "start": start, "values": values, "decay_only": decay_only}
    return out


def run_arm(arm: str, seed: int, protocol: Protocol, *,
            init_from: str | Path | None = None) -> dict[str, Any]:
    """Train one arm at one seed (in this process, one torch thread) and return its result;
    ``init_from``: the float weights it fine-tunes from (``Protocol.fine_tunes``). The
    trained model is in the result under ``"model"`` (not stored in the JSON)."""
    import torch

    from quant import train as qtrain

    recipe = _arm_recipe(arm)
    fp = recipe == FP_ARM
    names = (arm,) if arm in controls.CONTROLS else ()
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    base = {"format": RESULT_FORMAT, "protocol": protocol.of_arm(arm).as_dict(), "arm": arm,
            "recipe": recipe, "control": arm if names else None, "seed": seed,
            "init": FP_ARM if init_from is not None else "scratch"}
    try:
        with controls.swapped_in(*names):
            res = qtrain.train(protocol.model, recipe, 32 if fp else protocol.w_bits,
                               32 if fp else protocol.a_bits, epochs=protocol.epochs,
                               batch_size=protocol.batch_size, seed=seed, data=protocol.data,
                               width=protocol.width,
                               first_last_bits=None if fp else protocol.first_last_bits,
                               init_from=init_from, eval_split=protocol.eval_split)
    except FloatingPointError as err:
        # A diverged run left no usable model: it scores what a guess scores (accuracy
        # 1/classes, the cross-entropy ln(classes) of the uniform prediction).
        return {**base, "accuracy": 1 / DIGITS_CLASSES, "loss": math.log(DIGITS_CLASSES),
                "accuracy_curve": [], "diverged": str(err), "curves": {},
                "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    m = res.metrics
    ev = protocol.eval_split
    return {
        **base, "accuracy": float(m[f"{ev}_accuracy"]), "loss": float(m[f"{ev}_loss"]),
        "accuracy_curve": m[f"{ev}_accuracy_curve"], "diverged": None,
        "lr": m["lr"], "clip_decay": m["clip_decay"], "weight_decay": m["weight_decay"],
        "curves": _curves(res.model, m), "model": res.model,
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
    }


def _warm_up(data: str) -> None:
    """Import what the first ``quant.train.train`` call of a process would import (scikit-learn
    for the digits, torch's compiler stack for the optimizer: ~9 s of CPU on this machine), so
    each run's ``cpu_s`` measures its training, not the imports."""
    import torch

    from quant import data as qdata

    torch.set_num_threads(1)
    if data == "digits":
        qdata.load(data, "train")
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def _run_and_store(arm: str, seed: int, protocol: Protocol, path: str,
                   weights: str) -> dict[str, Any]:
    """Run one arm and store its result atomically; the ``fp32`` arm also stores its float
    weights at ``weights`` (the start of the arms that fine-tune), the others read them."""
    import torch

    from quant.checkpoints import _atomic_write, _write_json

    tunes = protocol.fine_tunes(arm)
    result = run_arm(arm, seed, protocol, init_from=weights if tunes else None)
    model = result.pop("model", None)
    if arm == FP_ARM and model is not None:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _atomic_write(Path(weights), lambda f: torch.save(state, f))
    _write_json(Path(path), result)
    return result


def load_results(cache: str | Path, protocol: Protocol, arms: Sequence[str],
                 seeds: Sequence[int]) -> dict[tuple[str, int], dict[str, Any]]:
    """The cached results of ``protocol`` for ``arms`` x ``seeds`` that exist (unreadable or
    foreign files are skipped, so they are retrained)."""
    found = {}
    for arm in arms:
        for seed in seeds:
            path = _result_path(Path(cache), protocol, arm, seed)
            try:
                r = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if r.get("format") == RESULT_FORMAT and r.get("protocol") == protocol.of_arm(
                    arm).as_dict() and r.get("arm") == arm and r.get("seed") == seed:
                found[(arm, seed)] = r
    return found


def run_benchmark(protocol: Protocol, arms: Sequence[str], seeds: Sequence[int],
                  cache: str | Path, *, jobs: int = 2,
                  progress: Callable[[str], None] | None = None,
                  ) -> dict[tuple[str, int], dict[str, Any]]:
    """Every ``(arm, seed)`` result, training those not cached yet in ``jobs`` worker
    processes (``jobs=1``: in this process). Each result is stored as soon as it finishes."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} (allowed: int >= 1)")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds={list(seeds)!r} (allowed: one or more ints >= 0)")
    cache = Path(cache)
    done = load_results(cache, protocol, arms, seeds)
    # An arm that fine-tunes needs its seed's fp32 weights: an fp32 run cached without them
    # (a protocol in which nothing fine-tuned) is trained again.
    for s in seeds:
        if (any(protocol.fine_tunes(a) and (a, s) not in done for a in arms)
                and not _fp_weights_path(cache, protocol, s).is_file()):
            done.pop((FP_ARM, s), None)
    needed = [FP_ARM] if any(protocol.fine_tunes(a) for a in arms) else []
    todo = [(a, s) for s in seeds for a in dict.fromkeys([*needed, *arms])
            if (a, s) not in done]
    say = progress or (lambda _msg: None)
    say(f"{len(done)} of {len(arms) * len(seeds)} runs cached in {cache / protocol.key()}; "
        f"training {len(todo)}")
    k = 0

    def record(arm: str, seed: int, r: dict[str, Any]) -> None:
        nonlocal k
        k += 1
        if arm in arms:
            done[(arm, seed)] = r
        say(f"[{k}/{len(todo)}] {arm} seed {seed}: accuracy {100 * r['accuracy']:.2f} % "
            f"({r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU)")

    def job(a: str, s: int) -> tuple[str, int, Protocol, str, str]:
        return (a, s, protocol, str(_result_path(cache, protocol, a, s)),
                str(_fp_weights_path(cache, protocol, s)))

    # Two waves: the arms that start from random weights (fp32 among them), then the arms
    # that fine-tune from the fp32 weights the first wave stored.
    waves = [[t for t in todo if not protocol.fine_tunes(t[0])],
             [t for t in todo if protocol.fine_tunes(t[0])]]
    if todo:
        _warm_up(protocol.data)
    if jobs == 1 or len(todo) <= 1:
        for a, s in (t for wave in waves for t in wave):
            record(a, s, _run_and_store(*job(a, s)))
        return done
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=get_context("spawn"),
                             initializer=_warm_up, initargs=(protocol.data,)) as pool:
        for wave in waves:
            futures = {pool.submit(_run_and_store, *job(a, s)): (a, s) for a, s in wave}
            for fut in as_completed(futures):
                a, s = futures[fut]
                record(a, s, fut.result())
    return done


INVOCATIONS = "invocations.json"


def invocations(cache: str | Path, protocol: Protocol) -> list[dict[str, Any]]:
    """The invocations recorded for ``protocol`` in ``cache`` (see :func:`record_invocation`)."""
    path = Path(cache) / protocol.key() / INVOCATIONS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def record_invocation(cache: str | Path, protocol: Protocol, *, wall_s: float, cpu_s: float,
                      trained: int, note: str = "") -> list[dict[str, Any]]:
    """Append one invocation's wall and CPU time and the number of runs it trained to the
    protocol's ``invocations.json`` (atomic rewrite); a benchmark resumed over several
    invocations reports their sum. Returns the updated list."""
    from quant.checkpoints import _atomic_write

    rows = [*invocations(cache, protocol), {"wall_s": wall_s, "cpu_s": cpu_s,
                                            "trained": trained, "note": note,
                                            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}]
    text = json.dumps(rows, indent=2) + "\n"
    _atomic_write(Path(cache) / protocol.key() / INVOCATIONS, lambda f: f.write(text.encode()))
    return rows
