"""Accuracy models the design search uses as a constraint: a data-free proxy and a measured one.

Every model maps per-layer bits ``{layer: (w_bits, a_bits)}`` to one number, higher = better, and
carries a ``label`` that reports and CSVs print next to the value (column ``accuracy_model``), so a
proxy is never mistaken for a measured accuracy.

``ProxyAccuracy`` (label starts with ``"proxy:"``): the network's output signal-to-quantization-
noise ratio in dB, from the additive noise model of Lin, Talathi & Annapureddy, "Fixed point
quantization of deep convolutional networks", ICML 2016 (Section 3: the output noise-to-signal
ratio is the sum of the per-layer ratios, 1/SQNR_out = sum_i 1/SQNR_i), with each layer's term
weighted by a sensitivity as in HAWQ (Dong et al. 2019/2020, Omega_i = s_i * ||Q(W_i) - W_i||^2):

    NSR_out = sum_i  s_i * (e_w,i(b_w) + e_a(b_a)),       proxy = -10 log10(NSR_out)  [dB]

* ``e_w,i(b)`` = min over alpha of ||W_i - Q_alpha(W_i)||^2 / ||W_i||^2: the relative MSE of the
  layer's own weights under the MSE-optimal symmetric uniform quantizer with 2^b levels spanning
  [-alpha, alpha] (PACT-SAWB paper Eq. 6; SAWB's Eq. 7 is a regression that approximates this
  optimum). A weight perturbation dW adds E||dW x||^2 / E||W x||^2 ~ e_w relative noise to the
  layer output for inputs x with isotropic covariance.
* ``e_a(b)``: relative MSE of a PACT-clipped (Eq. 1-2) unsigned uniform quantizer with 2^b levels
  and MSE-optimal clip, on a rectified unit Gaussian (the data-free assumption: pre-activations are
  ~Gaussian, activations are post-ReLU). The same for every layer.
* ``s_i`` (sensitivity): ``"noise_gain"`` (default when a torch model is available) measures, on
  random Gaussian inputs, how much relative noise injected at layer i's output is amplified at the
  network output (a first-order, data-free stand-in for HAWQ's Hessian trace); ``"uniform"``
  (s_i = 1) is Lin et al.'s unweighted sum.
* Above 8 bits the tables follow the 6.02 dB/bit rule of a fine uniform quantizer:
  e(b) = e(8) * 4^-(b - 8).

The proxy ranks bit allocations; it is not an accuracy. Zoo models are not pretrained, so their
weights are the PyTorch initialisation and e_w reflects that distribution's shape only.

``MeasuredAccuracy`` (label starts with ``"measured:"``): top-1 of a trained model evaluated with
the trial's bits (post-training, with the trained quantizer parameters), cached per bit assignment.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["MAX_BITS", "AccuracyModel", "MeasuredAccuracy", "ProxyAccuracy", "activation_nsr",
           "apply_bits_to_model", "digits_measured_accuracy", "from_dict", "input_act_modules",
           "noise_gain_sensitivity", "weight_nsr"]

log = logging.getLogger(__name__)

MAX_BITS = 32
_TABLE_BITS = 8  # computed numerically up to here; 6.02 dB/bit above
_SAMPLE = 16384  # weights per layer used for the MSE search (deterministic stride subsample)
_ALPHA_GRID = 64


class AccuracyModel(Protocol):
    """Maps per-layer bits to a score (higher = better); ``label`` names what the score is."""

    @property
    def label(self) -> str: ...

    def __call__(self, bits: Mapping[str, tuple[int, int]]) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...


def _check_bits(name: str, b: object) -> int:
    if isinstance(b, bool) or not isinstance(b, int | np.integer) or not 1 <= int(b) <= MAX_BITS:
        raise ValueError(f"{name}={b!r} is not allowed; expected an integer in 1..{MAX_BITS}")
    return int(b)


def _symmetric_mse(w: np.ndarray, alphas: np.ndarray, levels: int) -> np.ndarray:
    """MSE of w under 'levels' evenly spaced values spanning [-alpha, alpha], per alpha."""
    a = alphas[:, None]
    k = np.clip(np.rint((w[None, :] / a + 1.0) * (levels - 1) / 2.0), 0, levels - 1)
    q = a * (2.0 * k / (levels - 1) - 1.0)
    return np.asarray(np.mean((w[None, :] - q) ** 2, axis=1))


def _unsigned_mse(x: np.ndarray, alphas: np.ndarray, levels: int) -> np.ndarray:
    """MSE of x >= 0 clipped to [0, alpha] and rounded onto 'levels' values (PACT Eq. 1-2)."""
    a = alphas[:, None]
    y = np.clip(x[None, :], 0.0, a)
    q = np.rint(y * (levels - 1) / a) * a / (levels - 1)
    return np.asarray(np.mean((x[None, :] - q) ** 2, axis=1))


def _min_over_alpha(mse: Callable[[np.ndarray], np.ndarray], top: float) -> float:
    """Minimum of mse(alpha) on (0, top]: a coarse grid, then two zooms around the best point."""
    lo, hi = top / _ALPHA_GRID, top
    best = math.inf
    for _ in range(3):
        alphas = np.linspace(lo, hi, _ALPHA_GRID)
        vals = mse(alphas)
        i = int(np.argmin(vals))
        best = min(best, float(vals[i]))
        step = alphas[1] - alphas[0]
        lo, hi = max(alphas[i] - step, top * 1e-6), alphas[i] + step
    return best


def _extend(table: list[float]) -> tuple[float, ...]:
    """Extend a 1.._TABLE_BITS table to 1..MAX_BITS with the 6.02 dB/bit rule."""
    last = table[-1]
    return tuple(table) + tuple(last * 4.0 ** -(b - _TABLE_BITS)
                                for b in range(_TABLE_BITS + 1, MAX_BITS + 1))


def weight_nsr(w: np.ndarray) -> tuple[float, ...]:
    """Relative MSE of the MSE-optimal symmetric uniform quantizer (Eq. 6), for bits 1..MAX_BITS.

    Index ``b - 1`` holds the value for b bits. 2^b levels span [-alpha, alpha] (b = 1: {+-alpha},
    whose optimum alpha = E|w|). An all-zero tensor has no noise.
    """
    flat = np.asarray(w, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("w has no elements; expected a weight tensor")
    if flat.size > _SAMPLE:
        flat = flat[:: flat.size // _SAMPLE][:_SAMPLE]
    energy = float(np.mean(flat ** 2))
    top = float(np.max(np.abs(flat)))
    if energy == 0.0 or top == 0.0:
        return (0.0,) * MAX_BITS
    table = [_min_over_alpha(partial(_symmetric_mse, flat, levels=2 ** b), top) / energy
             for b in range(1, _TABLE_BITS + 1)]
    return _extend(table)


@lru_cache(maxsize=1)
def _activation_table() -> tuple[float, ...]:
    from scipy.stats import norm

    n = 32_768
    z = norm.ppf((np.arange(n) + 0.5) / n)  # deterministic quantile "sample" of N(0, 1)
    x = np.maximum(z, 0.0)
    energy = float(np.mean(x ** 2))  # 0.5 for a rectified unit Gaussian
    top = float(x.max())
    table = [_min_over_alpha(partial(_unsigned_mse, x, levels=2 ** b), top) / energy
             for b in range(1, _TABLE_BITS + 1)]
    return _extend(table)


def activation_nsr(bits: int) -> float:
    """Relative MSE of a PACT-quantized rectified unit Gaussian at ``bits`` (optimal clip)."""
    return _activation_table()[_check_bits("a_bits", bits) - 1]


@dataclass(frozen=True, slots=True)
class ProxyAccuracy:
    """Data-free accuracy proxy: output SQNR in dB (see the module docstring). Higher = better."""

    weight_nsr: Mapping[str, tuple[float, ...]]
    """Compute-layer name -> relative weight MSE for bits 1..MAX_BITS."""
    sensitivity: Mapping[str, float]
    sensitivity_method: str = "uniform"
    act_nsr: tuple[float, ...] = ()
    """Relative activation MSE for bits 1..MAX_BITS; () = computed (`activation_nsr`)."""
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        problems = []
        if set(self.weight_nsr) != set(self.sensitivity):
            problems.append(f"weight_nsr and sensitivity name different layers: "
                            f"{sorted(set(self.weight_nsr) ^ set(self.sensitivity))[:5]}")
        for name, t in self.weight_nsr.items():
            if len(t) != MAX_BITS or not all(v >= 0 and math.isfinite(v) for v in t):
                problems.append(f"weight_nsr[{name!r}] must be {MAX_BITS} finite values >= 0")
        for name, s in self.sensitivity.items():
            if not (math.isfinite(s) and s >= 0):
                problems.append(f"sensitivity[{name!r}]={s!r}; expected a finite value >= 0")
        if self.act_nsr and (len(self.act_nsr) != MAX_BITS
                             or not all(v >= 0 and math.isfinite(v) for v in self.act_nsr)):
            problems.append(f"act_nsr must be {MAX_BITS} finite values >= 0 (or empty)")
        if problems:
            raise ValueError("invalid ProxyAccuracy: " + "; ".join(problems))
        if not self.act_nsr:
            object.__setattr__(self, "act_nsr", _activation_table())
        if not self.label:
            object.__setattr__(self, "label", f"proxy: output SQNR dB, data-free "
                                              f"({self.sensitivity_method} sensitivity)")

    @property
    def layers(self) -> list[str]:
        return list(self.weight_nsr)

    def nsr(self, bits: Mapping[str, tuple[int, int]]) -> float:
        """Output noise-to-signal ratio: sum_i s_i (e_w,i(b_w) + e_a(b_a))."""
        missing = [n for n in self.weight_nsr if n not in bits]
        if missing:
            raise ValueError(f"bits missing for layers {missing[:5]}; the proxy needs (w, a) bits "
                             f"for every one of its {len(self.weight_nsr)} layers")
        total = 0.0
        for name, table in self.weight_nsr.items():
            w, a = bits[name]
            e = (table[_check_bits(f"w_bits[{name}]", w) - 1]
                 + self.act_nsr[_check_bits(f"a_bits[{name}]", a) - 1])
            total += self.sensitivity[name] * e
        return total

    def __call__(self, bits: Mapping[str, tuple[int, int]]) -> float:
        nsr = self.nsr(bits)
        return math.inf if nsr <= 0 else -10.0 * math.log10(nsr)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_weights(cls, weights: Mapping[str, np.ndarray],
                     sensitivity: Mapping[str, float] | None = None,
                     sensitivity_method: str | None = None) -> ProxyAccuracy:
        """From each layer's weight array; ``sensitivity=None`` = uniform (Lin et al. 2016)."""
        table = {name: weight_nsr(w) for name, w in weights.items()}
        if sensitivity is None:
            return cls(table, dict.fromkeys(table, 1.0), "uniform")
        return cls(table, {n: float(sensitivity[n]) for n in table},
                   sensitivity_method or "custom")

    @classmethod
    def from_model(cls, model: Any, layer_modules: Mapping[str, str],
                   input_shape: tuple[int, ...], sensitivity: str = "noise_gain",
                   seed: int = 0) -> ProxyAccuracy:
        """From a torch model; ``layer_modules`` maps workload layer name -> module name.

        ``sensitivity``: ``"noise_gain"`` or ``"uniform"``. Imports torch (not for workers).
        """
        if sensitivity not in ("noise_gain", "uniform"):
            raise ValueError(f"sensitivity={sensitivity!r} is not allowed; expected 'noise_gain' "
                             "or 'uniform'")
        mods = dict(model.named_modules())
        missing = sorted(m for m in layer_modules.values() if m not in mods)
        if missing:
            raise ValueError(f"layer_modules names modules the model lacks: {missing[:5]}")
        weights = {n: mods[m].weight.detach().cpu().numpy() for n, m in layer_modules.items()}
        if sensitivity == "uniform":
            return cls.from_weights(weights)
        gains = noise_gain_sensitivity(model, layer_modules, input_shape, seed=seed)
        return cls.from_weights(weights, gains, "noise_gain")

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"kind": "proxy", "sensitivity_method": self.sensitivity_method,
                "weight_nsr": {k: list(v) for k, v in self.weight_nsr.items()},
                "sensitivity": dict(self.sensitivity), "act_nsr": list(self.act_nsr)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProxyAccuracy:
        return cls({k: tuple(float(x) for x in v) for k, v in d["weight_nsr"].items()},
                   {k: float(v) for k, v in d["sensitivity"].items()},
                   str(d.get("sensitivity_method", "uniform")),
                   tuple(float(x) for x in d.get("act_nsr", ())))


def noise_gain_sensitivity(model: Any, layer_modules: Mapping[str, str],
                           input_shape: tuple[int, ...], *, batch: int = 8, rel_noise: float = 1e-4,
                           seed: int = 0) -> dict[str, float]:
    """Per layer: (relative output noise at the logits) / (relative noise injected at the layer).

    Data-free: inputs are standard Gaussian. For each layer, Gaussian noise of power
    ``rel_noise * E[y^2]`` is added to the layer's output y through a forward hook, and the
    returned gain is ``(E||dz||^2 / E||z||^2) / rel_noise`` for logits z. A gain of 1 means the
    network passes that layer's relative noise straight through (e.g. the last layer).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *input_shape), generator=gen)
    mods = dict(model.named_modules())
    was_training = model.training
    model.eval()
    gains: dict[str, float] = {}
    try:
        with torch.no_grad():
            z0 = model(x)
            ref = float((z0 ** 2).mean())
            for name, mname in layer_modules.items():
                noise_gen = torch.Generator().manual_seed(seed + 1)

                def hook(_m: Any, _inp: Any, y: Any, g: Any = noise_gen) -> Any:
                    scale = math.sqrt(rel_noise * float((y ** 2).mean()))
                    return y + scale * torch.randn(y.shape, generator=g)

                h = mods[mname].register_forward_hook(hook)
                try:
                    dz = model(x) - z0
                finally:
                    h.remove()
                gains[name] = float((dz ** 2).mean()) / ref / rel_noise if ref > 0 else 0.0
    finally:
        model.train(was_training)
    return gains


class MeasuredAccuracy:
    """Measured accuracy of a trained model under per-layer bits, cached per assignment.

    ``evaluate(bits) -> accuracy in 0..1`` does the work (e.g. rebuild the digits-trained model
    with these bits, keep its trained quantizer parameters, and score the test split); results are
    memoised in memory and, with ``cache_path``, in a JSON file shared by processes (rewritten
    atomically; a lost race only recomputes a value).
    """

    def __init__(self, evaluate: Callable[[Mapping[str, tuple[int, int]]], float], *,
                 label: str = "measured: top-1", cache_path: str | Path | None = None,
                 spec: Mapping[str, Any] | None = None) -> None:
        self._evaluate = evaluate
        self.label = label if label.startswith("measured") else f"measured: {label}"
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self._spec = dict(spec or {})
        self._cache: dict[str, float] = {}
        if self.cache_path is not None and self.cache_path.exists():
            try:  # a derived file: unreadable (torn, edited) means recompute, with a warning
                cached = json.loads(self.cache_path.read_text())
                self._cache.update({str(k): float(v) for k, v in cached.items()})
            except (ValueError, TypeError, AttributeError):
                log.warning("ignoring unreadable accuracy cache %s; its values are measured "
                            "again", self.cache_path)

    @staticmethod
    def key(bits: Mapping[str, tuple[int, int]]) -> str:
        return ";".join(f"{n}={int(w)}x{int(a)}" for n, (w, a) in sorted(bits.items()))

    def __call__(self, bits: Mapping[str, tuple[int, int]]) -> float:
        k = self.key(bits)
        if k not in self._cache:
            self._cache[k] = float(self._evaluate(bits))
            self._save()
        return self._cache[k]

    def _save(self) -> None:
        if self.cache_path is None:
            return
        merged = {}
        if self.cache_path.exists():
            try:
                merged.update(json.loads(self.cache_path.read_text()))
            except json.JSONDecodeError:
                log.warning("ignoring unreadable accuracy cache %s", self.cache_path)
        merged.update(self._cache)
        from dse.study.atomic import atomic_write_text

        atomic_write_text(self.cache_path, json.dumps(merged, indent=0, sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "measured", "label": self.label,
                "cache_path": str(self.cache_path) if self.cache_path else None, **self._spec}


def input_act_modules(model: Any, layer_modules: Mapping[str, str]) -> dict[str, list[str]]:
    """Layer -> the activation-quantizer modules (``QuantAct``-like: ``act_bits`` and a
    ``quantizer``, no weights) that write its input, by module order: those registered after the
    previous compute layer and before this one. Exact for chains (digits_cnn, AlexNet, VGG); in a
    residual block the act ending a block feeds the next block's first conv (and its shortcut,
    which then shares it). The workload graph cannot tell: extraction fuses activations into the
    producing op (its ``o_bits``)."""
    by_module = {m: n for n, m in layer_modules.items()}
    out: dict[str, list[str]] = {n: [] for n in layer_modules}
    pending: list[str] = []
    for name, mod in model.named_modules():
        if name in by_module:
            out[by_module[name]] = list(pending)
            pending = []
        elif (getattr(mod, "act_bits", None) is not None and hasattr(mod, "quantizer")
              and getattr(mod, "weight", None) is None):
            pending.append(name)
    return out


def apply_bits_to_model(model: Any, bits: Mapping[str, tuple[int, int]],
                        layer_modules: Mapping[str, str],
                        feeders: Mapping[str, list[str]]) -> None:
    """Set each layer's weight-quantizer bits to w and its input quantizers' bits to a (in place);
    layers without a quantizer (full-precision first/last) are left alone."""
    mods = dict(model.named_modules())
    for name, (w, a) in bits.items():
        if name not in layer_modules:
            raise ValueError(f"layer {name!r} is not a compute layer of the model's workload; "
                             f"expected one of {sorted(layer_modules)[:8]}")
        m = mods[layer_modules[name]]
        if getattr(m, "weight_quantizer", None) is not None:
            m.weight_quantizer.bits = int(w)
        if getattr(m, "input_quantizer", None) is not None:
            m.input_quantizer.bits = int(a)
        for act in feeders.get(name, ()):
            mods[act].quantizer.bits = int(a)


def digits_measured_accuracy(recipe: str, w_bits: int, a_bits: int, cache_dir: str,
                             workload: Workload | None = None, *, seed: int = 0,
                             cache_path: str | None = None,
                             train_kw: Mapping[str, Any] | None = None) -> MeasuredAccuracy:
    """Measured top-1 of ``digits_cnn`` trained under ``recipe`` at (w_bits, a_bits), evaluated on
    the digits test split with each trial's per-layer bits.

    The trained model comes from `quant.train.trained_digits_model` (trained once, cached in
    ``cache_dir``). Post-training: every quantizer keeps its trained parameters (PACT alpha, LSQ
    steps, ...) and only its ``bits`` changes - a layer's weight quantizer to w, the quantizer of
    its input activations (its own ``input_quantizer`` or the ``QuantAct`` modules that feed it,
    `input_act_modules`) to a. Layers without a quantizer (full-precision first/last) stay as
    trained.
    ``workload=None`` extracts it from the trained model; ``train_kw`` goes to the trainer
    (e.g. ``fp_epochs``, ``ft_epochs``). Imports torch: fine for the measured model, whose users
    train anyway.
    """
    import copy

    from quant.data import digits
    from quant.train import evaluate, trained_digits_model

    trained = trained_digits_model(recipe, w_bits, a_bits, cache_dir, seed=seed,
                                   **dict(train_kw or {}))
    if workload is None:
        from workloads import extract, zoo

        workload = extract(trained, input_shape=tuple(zoo.input_shape("digits_cnn")),
                           name="digits_cnn")
    test = digits("test", seed)
    layer_module = {la.name: la.module for la in workload.compute_layers()}
    feeders = input_act_modules(trained, layer_module)

    def run(bits: Mapping[str, tuple[int, int]]) -> float:
        model = copy.deepcopy(trained)
        apply_bits_to_model(model, bits, layer_module, feeders)
        return float(evaluate(model, test)[0])

    spec = {"recipe": recipe, "w_bits": w_bits, "a_bits": a_bits, "cache_dir": str(cache_dir),
            "seed": seed, "train_kw": dict(train_kw or {})}
    return MeasuredAccuracy(run, label=f"measured: digits top-1 ({recipe} trained at "
                                       f"W{w_bits}A{a_bits}, post-training bits)",
                            cache_path=cache_path, spec=spec)


def from_dict(d: Mapping[str, Any], workload: Workload | None = None) -> AccuracyModel:
    """Rebuild an accuracy model stored with a study (``to_dict`` output)."""
    kind = d.get("kind")
    if kind == "proxy":
        return ProxyAccuracy.from_dict(d)
    if kind == "measured":
        if workload is None:
            raise ValueError("a measured accuracy model needs the workload to rebuild")
        return digits_measured_accuracy(d["recipe"], int(d["w_bits"]), int(d["a_bits"]),
                                        d["cache_dir"], workload, seed=int(d.get("seed", 0)),
                                        cache_path=d.get("cache_path"),
                                        train_kw=d.get("train_kw"))
    raise ValueError(f"accuracy kind={kind!r} is not allowed; expected 'proxy' or 'measured'")
