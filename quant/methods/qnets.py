"""Quantization Networks (Yang et al., CVPR 2019): quantization as a sum of sigmoids.

For a sorted target set ``Y = {Y_0 < ... < Y_n}`` (e.g. {-4,-2,-1,0,1,2,4}) with gaps
``s_i = Y_i - Y_(i-1)``, the ideal quantizer is a staircase of unit steps (Eq. 4)::

    y = sum_i s_i A(beta x - b_i) - o                                     (Eq. 4 / 11)

relaxed in training by sigmoids with temperature T (Eq. 5, 6)::

    y = alpha * (sum_i s_i sigmoid(T (beta x - b_i)) - o)                 (Eq. 6)

``o = -Y_0``: for zero-centred weight sets this is the paper's ``o = sum(s_i) / 2``, for
activation sets starting at 0 it is the paper's ``o = 0``. Autograd of Eq. 6 is Eq. 7-10 with
``g_d^i = alpha s_i sigmoid(T(beta x_d - b_i))`` (the paper's ``g (alpha s_i - g) / (alpha s_i)``
is ``alpha s_i sigma (1 - sigma)``); tests/quant/test_qnets.py checks this against Eq. 7-10.

Training details taken from the paper (Section 4.1) and the official code
(../shared/research/quant_methods_notes.md 2.5):

* temperature ``T = (epoch + 1) * T0`` at every :meth:`on_epoch_start` (epochs count from 0),
  capped at ``t_max`` (2000) and, optionally, the sigmoid argument clamped to +-``arg_clamp``;
* ``beta = 5p / (4q)`` with p = max|Y| and q = max|x|; ``alpha = 1 / beta``;
* biases: binary sets use ``b = 0``; otherwise 1-D k-means with ``n + 1`` clusters on ``beta x``
  and ``b_i`` = midpoint of adjacent sorted centres; weights at build time, activations from a
  sample (:meth:`calibrate`);
* biases are frozen after initialisation, weights and activations alike ("we freeze the biases
  after the initialization in all experiments", the ablation after Table 5), unless
  ``learn_biases=True``;
* binary sets back-propagate through the T = 1 sigmoid ("freezing T = 1 for the
  back-propagation of binary quantization", Section 4.1) unless ``binary_t1_backward=False``;
* evaluation mode replaces the sigmoids by unit steps, Eq. 11 (``A(0) = 1``, Eq. 1);
* alpha and beta are scale factors and enter as |alpha|, |beta|: with a large learning rate
  SGD can push them through zero, after which the soft function is still monotone but the hard
  steps of a negative beta never fire on ReLU outputs (observed on digits from scratch). The
  paper fine-tunes from FP with lr 1e-3 and clips gradients at norm 5; do the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from quant.methods.base import ParamGroup, Quantizer

__all__ = ["QNActQuantizer", "QNQuantizer", "QNWeightQuantizer", "default_levels", "kmeans_1d"]

_MAX_SAMPLES = 1 << 16  # values used for k-means (a fixed-seed random subsample beyond this)


def default_levels(bits: int, signed: bool) -> tuple[float, ...]:
    """Uniform target set for ``bits``: signed {-(2^(k-1)-1) .. 2^(k-1)-1} (binary {-1, 1} for
    k = 1: the paper's ternary = 2 bits, {-15..15} = 5 bits), unsigned {0 .. 2^k - 1}."""
    if not signed:
        return tuple(float(v) for v in range(2**bits))
    if bits == 1:
        return (-1.0, 1.0)
    m = 2 ** (bits - 1) - 1
    return tuple(float(v) for v in range(-m, m + 1))


def kmeans_1d(x: Tensor, k: int, iters: int = 100) -> Tensor:
    """Lloyd's 1-D k-means; returns ``k`` sorted centres.

    Initialised at quantiles of the DISTINCT values (ReLU outputs hold many exact zeros, which
    would otherwise put several centres on 0); deterministic. Clusters of 1-D k-means are
    contiguous intervals, so adjacent centres bound each decision threshold.
    """
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    v = torch.sort(x.detach().flatten().double()).values
    if v.numel() == 0:
        raise ValueError("kmeans_1d needs at least one value")
    u = torch.unique(v)
    if u.numel() < k:  # fewer distinct values than clusters: spread the centres evenly
        lo, hi = float(u[0]), float(u[-1])
        return torch.linspace(lo, hi if hi > lo else lo + 1.0, k, dtype=x.dtype)
    q = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    c = torch.quantile(u[:: max(1, u.numel() >> 20)], q)  # torch.quantile takes < 2^24 values
    for _ in range(iters):
        edges = (c[1:] + c[:-1]) / 2
        idx = torch.searchsorted(edges, v, right=True)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, idx, v)
        cnt = torch.zeros(k, dtype=torch.float64).index_add_(0, idx, torch.ones_like(v))
        new = torch.where(cnt > 0, sums / cnt.clamp_min(1), c)
        new = torch.sort(new).values
        if torch.allclose(new, c, rtol=0, atol=1e-12 * float(v.abs().max() + 1)):
            c = new
            break
        c = new
    return c.to(x.dtype)


class QNQuantizer(Quantizer):
    """Sum-of-sigmoids quantizer (Eq. 6) with hard steps at inference (Eq. 11).

    Args:
        bits: bits of the integer code; the default target set comes from it.
        signed: weights (zero-centred set) or non-negative activations.
        levels: explicit target set Y (any sorted-able sequence of >= 2 distinct numbers);
            needs ``len(levels) <= 2**bits``.
        t0: temperature step, ``T = (epoch + 1) * t0`` (paper: 10 for AlexNet, 5 for ResNet).
        t_max: cap on T (official code: 2000).
        arg_clamp: clamp of the sigmoid argument T(beta x - b), or None.
        learn_biases: whether the b_i are Parameters (default False: the paper freezes them
            after initialisation in all experiments).
        binary_t1_backward: for |Y| = 2, back-propagate through the T = 1 sigmoid.
    """

    def __init__(
        self,
        bits: int,
        *,
        signed: bool,
        levels: Sequence[float] | None = None,
        t0: float = 5.0,
        t_max: float = 2000.0,
        arg_clamp: float | None = 10.0,
        learn_biases: bool | None = None,
        binary_t1_backward: bool = True,
    ) -> None:
        super().__init__(bits, signed)
        ys = default_levels(bits, signed) if levels is None else tuple(float(v) for v in levels)
        if len(ys) < 2 or len(set(ys)) != len(ys) or not all(map(math.isfinite, ys)):
            raise ValueError(f"levels={levels!r} must hold >= 2 distinct finite numbers")
        if len(ys) > 2**bits:
            raise ValueError(
                f"levels has {len(ys)} values, more than 2**bits = {2**bits} codes; "
                f"raise bits to >= {math.ceil(math.log2(len(ys)))}"
            )
        for name, v in (("t0", t0), ("t_max", t_max)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r} must be a finite number > 0")
        if arg_clamp is not None and not (math.isfinite(arg_clamp) and arg_clamp > 0):
            raise ValueError(f"arg_clamp={arg_clamp!r} must be a finite number > 0 or None")
        ys = tuple(sorted(ys))
        self.register_buffer("levels", torch.tensor(ys))
        self.register_buffer("steps", torch.tensor(ys[1:]) - torch.tensor(ys[:-1]))  # s_i
        self.offset = -ys[0]  # o of Eq. 4/6
        self.t0, self.t_max, self.arg_clamp = float(t0), float(t_max), arg_clamp
        self.binary_t1_backward = bool(binary_t1_backward)
        self.register_buffer("temperature", torch.tensor(min(self.t0, self.t_max)))
        n = len(ys) - 1
        self.beta = nn.Parameter(torch.tensor(1.0))
        self.alpha = nn.Parameter(torch.tensor(1.0))
        b0 = (torch.tensor(ys[1:]) + torch.tensor(ys[:-1])) / 2  # midpoints until calibrated
        learn = False if learn_biases is None else bool(learn_biases)
        if learn:
            self.biases = nn.Parameter(b0)
        else:
            self.register_buffer("biases", b0)
        self.register_buffer("initialized", torch.tensor(False))
        self.n = n

    @property
    def max_abs_level(self) -> float:
        """p of the beta initialisation."""
        return float(self.levels.abs().max())

    # ---- hooks ---------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        """Linear schedule ``T = (epoch + 1) * t0``, capped at ``t_max``."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch={epoch!r} must be an int >= 0")
        self.temperature.fill_(min((epoch + 1) * self.t0, self.t_max))

    def calibrate(self, x: Tensor) -> None:
        """beta = 5p/(4q), alpha = 1/beta, biases from k-means of beta*x (Section 4.1)."""
        v = x.detach().flatten().float()
        v = v[torch.isfinite(v)]
        if v.numel() == 0:
            raise ValueError("calibrate(x) got no finite values")
        if v.numel() > _MAX_SAMPLES:
            g = torch.Generator().manual_seed(0)
            v = v[torch.randperm(v.numel(), generator=g)[:_MAX_SAMPLES]]
        q = float(v.abs().max())
        if q <= 0.0:
            return  # all zeros: nothing to learn a range from yet
        beta = 5.0 * self.max_abs_level / (4.0 * q)
        with torch.no_grad():
            self.beta.fill_(beta)
            self.alpha.fill_(1.0 / beta)
            if self.n == 1 and self.signed:
                self.biases.zero_()  # binary: b = 0 (Section 4.1)
            else:
                c = kmeans_1d(v * beta, self.n + 1)
                self.biases.copy_((c[1:] + c[:-1]) / 2)
            self.initialized.fill_(True)

    def param_group(self) -> ParamGroup:
        return "scale"

    # ---- forward -------------------------------------------------------------------------
    def _soft(self, x: Tensor, t: Tensor | float) -> Tensor:
        z = t * (self.beta.abs() * x.unsqueeze(-1) - self.biases)  # (..., n)
        if self.arg_clamp is not None:
            z = z.clamp(-self.arg_clamp, self.arg_clamp)
        return self.alpha.abs() * ((torch.sigmoid(z) * self.steps).sum(-1) - self.offset)

    def hard(self, x: Tensor) -> Tensor:
        """Eq. 11: ``alpha * (sum_i s_i A(beta x - b_i) - o)`` with A(0) = 1."""
        a = (self.beta.abs() * x.unsqueeze(-1) - self.biases >= 0).to(x.dtype)
        return self.alpha.abs() * ((a * self.steps).sum(-1) - self.offset)

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized):
            self.calibrate(x)
        if not self.training:
            return self.hard(x)
        t = self.temperature
        y = self._soft(x, t)
        if self.binary_t1_backward and self.n == 1:
            y1 = self._soft(x, 1.0)
            y = y1 + (y - y1).detach()
        return y

    def extra_repr(self) -> str:
        ys = [round(float(v), 4) for v in self.levels]
        return f"bits={self.bits}, levels={ys}, T={float(self.temperature):g}"


class QNWeightQuantizer(QNQuantizer):
    """Weight quantizer: zero-centred target set, frozen biases (k-means init at build)."""

    def __init__(self, bits: int, **kw: object) -> None:
        kw.setdefault("signed", True)
        super().__init__(bits, **kw)  # type: ignore[arg-type]


class QNActQuantizer(QNQuantizer):
    """Activation quantizer: set {0 .. 2^k - 1}, fixed biases from sampled activations."""

    def __init__(self, bits: int, **kw: object) -> None:
        kw.setdefault("signed", False)
        super().__init__(bits, **kw)  # type: ignore[arg-type]
