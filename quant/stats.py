"""The statistics of the negative-control benchmark (:mod:`quant.benchmark`): the one-sided
paired t-test of "the control is worse" across seeds (:func:`paired_t_test`, with an exact
Wilcoxon signed-rank cross-check) and the Holm-Bonferroni adjustment of a family of p-values
(:func:`holm`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedTest", "holm", "paired_t_test"]


@dataclass(frozen=True, slots=True)
class PairedTest:
    """One-sided paired comparison of ``reference`` against ``treated`` over seeds.

    Attributes:
        n: number of pairs.
        mean_delta, sd_delta: mean and sample standard deviation (ddof 1) of
            d_i = reference_i - treated_i (positive: the treated arm is worse).
        t: the paired t statistic mean(d) / (sd(d) / sqrt(n)) (inf when sd = 0 < mean).
        p_value: P(T_{n-1} >= t), the one-sided p-value of H1 "mean(d) > 0".
        p_wilcoxon: one-sided exact Wilcoxon signed-rank p-value (zero differences dropped;
            1 when every difference is zero), a rank-based cross-check of the t-test.
    """

    n: int
    mean_delta: float
    sd_delta: float
    t: float
    p_value: float
    p_wilcoxon: float


def paired_t_test(reference: Sequence[float], treated: Sequence[float]) -> PairedTest:
    """One-sided paired t-test (H1: reference > treated) and the Wilcoxon cross-check.

    t = mean(d) / (s_d / sqrt(n)) with d = reference - treated and s_d the ddof-1 standard
    deviation; p = sf of Student's t with n - 1 degrees of freedom at t. Degenerate s_d = 0:
    p = 0 if mean(d) > 0, else 1."""
    from scipy import stats

    if len(reference) != len(treated):
        raise ValueError(f"paired samples differ in length: {len(reference)} != {len(treated)}")
    n = len(reference)
    if n < 2:
        raise ValueError(f"n={n} pairs (allowed: >= 2 for a t-test)")
    d = [float(r) - float(t) for r, t in zip(reference, treated)]
    if not all(math.isfinite(x) for x in d):
        raise ValueError(f"paired differences must be finite, got {d}")
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    if sd == 0.0:
        t, p = (math.inf, 0.0) if mean > 0 else (math.nan if mean == 0 else -math.inf, 1.0)
    else:
        t = mean / (sd / math.sqrt(n))
        p = float(stats.t.sf(t, n - 1))
    nonzero = [x for x in d if x != 0.0]
    p_w = float(stats.wilcoxon(nonzero, alternative="greater").pvalue) if nonzero else 1.0
    return PairedTest(n, mean, sd, t, p, p_w)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
