"""SAWB: statistics-aware weight binning (Choi et al., SysML 2019, Section 4;
papers/pact_sawb_2bit_qnn_sysml2019.txt).

Per layer and per training step the clipping scale of the weights is predicted from the first
two moments of the full-precision weights (Eq. 7)::

    alpha_w = c1 * sqrt(E[w^2]) - c2 * E[|w|]                 (7)

approximating the MSE-optimal scale alpha_w* = argmin ||w - w_q||^2 (Eq. 6). (c1, c2) come from a
least-squares fit, without intercept, of alpha* against (sqrt(E[w^2]), E|w|) over six unit-variance
distributions (Gaussian, uniform, Laplace, logistic, triangle, von Mises; Section 4, Fig. 5b).

The level grid decides the coefficients (notes 2.2):

* ``"with_zero"``: 2^b - 1 levels including 0, step alpha / (2^(b-1) - 1); 2 bits = {-a, 0, a}.
  The paper's published pair (2.587, 1.693) belongs to THIS grid (it is ternary).
* ``"even"``: 2^b levels spanning [-a, a], step 2a / (2^b - 1); 2 bits = {+-a/3, +-a} (the
  4-bin scheme drawn in Fig. 5a). Its fitted pair is about (3.2, 2.2).

The linear rule degrades with bit width (fit error ~8 % at 4 bits, 35 % at 8 bits), so the
shipped table covers 2..4 bits and :class:`SAWB` refuses more bits unless ``method="mse"``
(a per-step search of Eq. 6 on the actual weights).

``python -m quant.sawb_table [--write]`` refits the table (and writes quant/sawb_table.json).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from quant import controls
from quant.methods.base import Quantizer, check_bits

__all__ = [
    "GRIDS",
    "PUBLISHED_COEFFICIENTS",
    "SAWB",
    "TABLE_BITS",
    "TABLE_FILE",
    "SAWBFit",
    "fit_sawb",
    "fit_sawb_coefficients",
    "optimal_scale",
    "sawb_coefficients",
    "sawb_quantize",
    "sawb_scale",
    "unit_levels",
    "unit_variance_distributions",
]

log = logging.getLogger(__name__)

Grid = Literal["with_zero", "even"]
GRIDS: tuple[str, ...] = ("with_zero", "even")
TABLE_BITS: tuple[int, ...] = (2, 3, 4)
TABLE_FILE = "sawb_table.json"

PUBLISHED_COEFFICIENTS: dict[tuple[int, str], dict[str, tuple[float, float]]] = {
    # notes 2.2; compare sets by the alpha they predict, c1 and c2 are collinear.
    (2, "with_zero"): {"paper (ASU get_scale_tern)": (2.587, 1.693), "IBM FMS 103": (2.6, 1.71)},
    (2, "even"): {"ASU get_scale_2bit": (3.212, 2.178), "IBM FMS 102": (3.12, 2.064),
                  "riptide": (3.19, 2.14)},
    (3, "even"): {"IBM FMS": (7.509, 6.892), "riptide": (7.40, 6.66)},
    (4, "even"): {"IBM FMS": (12.68, 12.80)},
}


def _check_grid(grid: object) -> str:
    if grid not in GRIDS:
        raise ValueError(f"grid={grid!r} is not a SAWB grid; allowed: {', '.join(GRIDS)}")
    return str(grid)


def unit_levels(bits: int, grid: str) -> np.ndarray:
    """Non-negative quantization levels for alpha = 1, ascending (0 included for with_zero)."""
    _check_grid(grid)
    if grid == "with_zero":
        check_bits(bits, low=2, high=16)
        n = 2 ** (bits - 1) - 1  # positive levels
        return np.arange(0, n + 1, dtype=np.float64) / n
    check_bits(bits, low=1, high=16)
    n = 2**bits - 1  # intervals between the 2^b levels spanning [-1, 1]
    return np.arange(1, n + 1, 2, dtype=np.float64) / n


def sawb_quantize(w: Tensor, alpha: Tensor | float, bits: int, grid: str) -> Tensor:
    """Snap ``w`` to the nearest level of the grid with outer level ``alpha`` (no gradient
    handling: callers add the STE). Values beyond +-alpha go to +-alpha."""
    _check_grid(grid)
    a = torch.as_tensor(alpha, dtype=w.dtype, device=w.device).clamp_min(1e-12)
    wc = torch.maximum(torch.minimum(w, a), -a)
    if grid == "with_zero":
        step = a / (2 ** (bits - 1) - 1)
        return torch.round(wc / step) * step
    step = 2 * a / (2**bits - 1)
    return torch.round((wc + a) / step) * step - a


def sawb_scale(w: Tensor, c1: float, c2: float) -> Tensor:
    """Eq. 7 on the full-precision weights, falling back to max|w| when it gives alpha <= 0."""
    w = w.detach()
    alpha = c1 * w.square().mean().sqrt() - c2 * w.abs().mean()
    if not bool(torch.isfinite(alpha)) or float(alpha) <= 0.0:
        log.debug("SAWB: Eq. 7 gave alpha=%s <= 0, falling back to max|w|", float(alpha))
        return w.abs().max()
    return alpha


def _sse(w: Tensor, alphas: Tensor, bits: int, grid: str, chunk_elems: int = 1 << 22) -> Tensor:
    """Squared error ||w - q(w; a)||^2 for every a in ``alphas`` (1-D), in memory-bounded chunks."""
    out = []
    step = max(1, chunk_elems // max(1, w.numel()))
    for i in range(0, alphas.numel(), step):
        a = alphas[i : i + step, None]
        out.append((w[None] - sawb_quantize(w[None], a, bits, grid)).square().sum(dim=1))
    return torch.cat(out)


def optimal_scale(
    w: Tensor, bits: int, grid: str, *, num_candidates: int = 256, refine_iters: int = 30
) -> Tensor:
    """argmin_alpha ||w - q(w; alpha)||^2 (Eq. 6) by an exhaustive scan of ``num_candidates``
    values in (0, max|w|] followed by a golden-section refinement around the best one."""
    w = w.detach().reshape(-1)
    wmax = float(w.abs().max())
    if wmax == 0.0:
        return torch.zeros((), dtype=w.dtype, device=w.device)
    cands = torch.linspace(wmax / num_candidates, wmax, num_candidates, dtype=torch.float64)
    errs = _sse(w, cands.to(w.dtype), bits, grid)
    i = int(torch.argmin(errs))
    best_a, best_e = float(cands[i]), float(errs[i])
    lo, hi = float(cands[max(i - 1, 0)]), float(cands[min(i + 1, num_candidates - 1)])

    def sse(alpha: float) -> float:
        return float(_sse(w, torch.tensor([alpha], dtype=w.dtype, device=w.device), bits, grid)[0])

    invphi = (math.sqrt(5) - 1) / 2
    c, d = hi - invphi * (hi - lo), lo + invphi * (hi - lo)
    ec, ed = sse(c), sse(d)
    for _ in range(refine_iters):
        if ec < ed:
            hi, d, ed = d, c, ec
            c = hi - invphi * (hi - lo)
            ec = sse(c)
        else:
            lo, c, ec = c, d, ed
            d = lo + invphi * (hi - lo)
            ed = sse(d)
    for a, e in ((c, ec), (d, ed)):
        if e < best_e:
            best_a, best_e = a, e
    return torch.tensor(best_a, dtype=w.dtype, device=w.device)


# ---- coefficient fit over six distributions (Section 4, Fig. 5b) -----------------------------


def unit_variance_distributions(kappa: float = 2.0) -> dict[str, object]:
    """The six zero-mean, unit-variance densities of Section 4 as frozen scipy distributions."""
    from scipy import stats

    vm_std = float(stats.vonmises(kappa).std())
    return {
        "gaussian": stats.norm(),
        "uniform": stats.uniform(loc=-math.sqrt(3), scale=2 * math.sqrt(3)),
        "laplace": stats.laplace(scale=1 / math.sqrt(2)),
        "logistic": stats.logistic(scale=math.sqrt(3) / math.pi),
        "triangle": stats.triang(0.5, loc=-math.sqrt(6), scale=2 * math.sqrt(6)),
        "von_mises": stats.vonmises(kappa, scale=1 / vm_std),
    }


class _HalfMoments:
    """Cumulative partial moments M_k(x) = int_0^x t^k p(t) dt, k = 0, 1, 2, of a symmetric
    density on a fine grid (trapezoid rule), so any cell integral is two interpolations."""

    def __init__(
        self, dist: object, x_max: float = 30.0, n: int = 600_001, half_width: float = math.inf
    ) -> None:
        from scipy.integrate import cumulative_trapezoid

        x = np.linspace(0.0, x_max, n)
        p = np.where(x <= half_width, dist.pdf(x), 0.0)  # type: ignore[attr-defined]
        self.x = x
        self.m = [cumulative_trapezoid(p * x**k, x, initial=0.0) for k in range(3)]

    def between(self, k: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        mk = self.m[k]
        return np.interp(b, self.x, mk) - np.interp(a, self.x, mk)

    @property
    def second_moment(self) -> float:
        return 2.0 * float(self.m[2][-1])

    @property
    def mean_abs(self) -> float:
        return 2.0 * float(self.m[1][-1])

    def mse(self, alpha: float, levels: np.ndarray) -> float:
        """E[(w - q(w))^2] for the symmetric grid alpha * ``levels`` (nearest-level rounding)."""
        lv = alpha * levels
        edges = np.concatenate(([0.0], (lv[:-1] + lv[1:]) / 2, [self.x[-1]]))
        a, b = edges[:-1], edges[1:]
        m0, m1, m2 = (self.between(k, a, b) for k in range(3))
        cell = m2 - 2 * lv * m1 + lv**2 * m0  # int_a^b (w - l)^2 p(w) dw
        return 2.0 * float(cell.sum())


@dataclass(frozen=True, slots=True)
class SAWBFit:
    """Result of :func:`fit_sawb`: coefficients and, per distribution, the optimum and moments."""

    bits: int
    grid: str
    c1: float
    c2: float
    alpha_opt: dict[str, float]  # MSE-optimal alpha (unit variance)
    mean_abs: dict[str, float]  # E|w|
    rms: dict[str, float]  # sqrt(E[w^2]) (1 up to integration error)

    def predict(self, name: str) -> float:
        return self.c1 * self.rms[name] - self.c2 * self.mean_abs[name]

    @property
    def max_rel_error(self) -> float:
        return max(abs(self.predict(n) / a - 1) for n, a in self.alpha_opt.items())


@functools.cache
def _moments(kappa: float) -> dict[str, _HalfMoments]:
    dists = unit_variance_distributions(kappa)
    # scipy's von Mises pdf is 2*pi-periodic on the real line: cut it to one period.
    vm_half = math.pi * float(dists["von_mises"].kwds["scale"])  # type: ignore[attr-defined]
    return {
        k: _HalfMoments(d, half_width=vm_half if k == "von_mises" else math.inf)
        for k, d in dists.items()
    }


def _optimal_alpha(mom: _HalfMoments, levels: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    cands = np.linspace(0.05, 12.0, 480)
    errs = [mom.mse(a, levels) for a in cands]
    i = int(np.argmin(errs))
    lo, hi = cands[max(i - 1, 0)], cands[min(i + 1, len(cands) - 1)]
    res = minimize_scalar(lambda a: mom.mse(a, levels), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-7})
    return float(res.x)


@functools.cache
def _optima(bits: int, grid: str, kappa: float) -> tuple[tuple[str, float, float, float], ...]:
    """(name, alpha*, E|w|, sqrt(E w^2)) per density (cached: the fit is deterministic)."""
    levels = unit_levels(bits, grid)
    return tuple((name, _optimal_alpha(mom, levels), mom.mean_abs, math.sqrt(mom.second_moment))
                 for name, mom in _moments(kappa).items())


def fit_sawb(bits: int, grid: str, *, kappa: float = 2.0) -> SAWBFit:
    """Refit Eq. 7's coefficients for ``bits`` and ``grid`` (Section 4): the MSE-optimal alpha of
    each of six unit-variance densities by numerical integration and a bounded 1-D minimisation,
    then least squares without intercept of alpha* on (sqrt(E[w^2]), -E|w|)."""
    rows = _optima(bits, _check_grid(grid), float(kappa))
    alpha = {name: a for name, a, _, _ in rows}
    m1 = {name: m for name, _, m, _ in rows}
    rms = {name: r for name, _, _, r in rows}
    names = list(alpha)
    A = np.array([[rms[n], -m1[n]] for n in names])
    y = np.array([alpha[n] for n in names])
    (c1, c2), *_ = np.linalg.lstsq(A, y, rcond=None)
    return SAWBFit(bits, grid, float(c1), float(c2), alpha, m1, rms)


def fit_sawb_coefficients(bits: int, grid: str) -> tuple[float, float]:
    """(c1, c2) of Eq. 7 refitted for ``bits`` and ``grid`` (see :func:`fit_sawb`)."""
    fit = fit_sawb(bits, grid)
    return fit.c1, fit.c2


@functools.cache
def _table() -> dict[str, dict[str, list[float]]]:
    text = resources.files("quant").joinpath(TABLE_FILE).read_text()
    return json.loads(text)["coefficients"]


def sawb_coefficients(bits: int, grid: str = "even") -> tuple[float, float]:
    """(c1, c2) of Eq. 7 from the shipped table (bits 2..4, both grids)."""
    _check_grid(grid)
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in TABLE_BITS:
        raise ValueError(
            f"bits={bits!r} has no SAWB coefficients; allowed: {TABLE_BITS} (the linear rule of "
            "Eq. 7 is poor above 4 bits; use SAWB(..., method='mse') for an MSE search)"
        )
    c1, c2 = _table()[str(bits)][grid]
    return float(c1), float(c2)


class SAWB(Quantizer):
    """SAWB weight quantizer: per-step scale from Eq. 7, nearest-level rounding, STE.

    Args:
        bits: weight bits (2..4 with ``method="formula"``; 2..16 with ``"mse"``).
        grid: ``"even"`` (default, 2^b levels, Fig. 5a) or ``"with_zero"`` (2^b - 1 levels).
        method: ``"formula"`` (Eq. 7) or ``"mse"`` (search Eq. 6 on the weights every step).
        coefficients: explicit (c1, c2) instead of the shipped table (e.g. the paper's pair).

    The gradient is the plain STE d w_q / d w = 1 (the scale is a statistic, not learned). The
    scale of the latest forward pass is kept in the buffer ``alpha`` (for export).
    """

    max_bits = 16

    def __init__(
        self,
        bits: int,
        *,
        grid: str = "even",
        method: str = "formula",
        coefficients: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(bits, signed=True)
        self.grid = _check_grid(grid)
        if method not in ("formula", "mse"):
            raise ValueError(f"method={method!r}; allowed: 'formula', 'mse'")
        if grid == "with_zero" and bits < 2:
            raise ValueError(f"bits={bits}: the with_zero grid needs bits >= 2")
        self.method = method
        if method == "formula":
            if coefficients is None:
                coefficients = sawb_coefficients(bits, grid)
            elif len(coefficients) != 2 or not all(math.isfinite(c) for c in coefficients):
                raise ValueError(f"coefficients={coefficients!r} must be two finite numbers")
        self.coefficients = None if coefficients is None else tuple(map(float, coefficients))
        self.register_buffer("alpha", torch.tensor(0.0))

    def compute_alpha(self, w: Tensor) -> Tensor:
        """alpha_w for the current weights (Eq. 7, or Eq. 6 by search with method='mse')."""
        if self.method == "mse":  # a coarser scan than the offline default: this runs per step
            return optimal_scale(w, self.bits, self.grid, num_candidates=64, refine_iters=20)
        assert self.coefficients is not None
        if controls.active(controls.SAWB_MAX_ABS):  # negative control: not Eq. 7
            return w.detach().abs().max()
        return sawb_scale(w, *self.coefficients)

    def calibrate(self, x: Tensor) -> None:
        """Set the ``alpha`` buffer from weights ``x`` (so it is meaningful before a forward)."""
        with torch.no_grad():
            self.alpha.copy_(self.compute_alpha(x))

    def forward(self, w: Tensor) -> Tensor:
        with torch.no_grad():
            if controls.active(controls.SAWB_ALPHA_FIXED) and float(self.alpha) > 0.0:
                alpha = self.alpha.clone()  # negative control: the scale of the calibration
            else:
                alpha = self.compute_alpha(w)
            self.alpha.copy_(alpha)
            wq = sawb_quantize(w.detach(), alpha, self.bits, self.grid)
        return wq + (w - w.detach())  # plain STE; forward exactly wq

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, grid={self.grid}, method={self.method}, "
                f"coefficients={self.coefficients}")
