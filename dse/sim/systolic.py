"""Closed-form, stall-free cycle counts of one systolic array, per dataflow (SCALE-Sim v3).

Notation (SCALE-Sim's GEMM view of a layer): ``M`` output pixels (batch included), ``N`` filters,
``K`` = R*S*C reduction depth; the array has ``rows`` (R) x ``cols`` (C) MACs.

SCALE-Sim v3 maps one dataflow's two *spatial* dims onto the array and streams the third
(*temporal*) dim through it, one fold (an R x C slice of the spatial dims) at a time:

======== ========================= ================================ =========================
dataflow spatial (rows, cols)      folds                            cycles per fold
======== ========================= ================================ =========================
``os``   (M, N)                    ceil(M/R) * ceil(N/C)            K + R + C - 2
``ws``   (K, N)                    ceil(K/R) * ceil(N/C)            M + 2R + C - 2
``is``   (K, M)                    ceil(K/R) * ceil(M/C)            N + 2R + C - 2
======== ========================= ================================ =========================

and its reported compute cycles are ``folds * cycles_per_fold - 1``. These forms were verified equal
to every SCALE-Sim v3 layer run in ``../shared/reference/scalesim/README.md``; the OS fill/drain
term is R + C - 2 (not the 2R of the ISPASS 2020 analytical model, which is for WS/IS).

Nothing here knows about bits, cores or memory: `dse.sim.mapping` composes these per tile and core.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DATAFLOWS",
    "FoldShape",
    "compute_cycles",
    "fold_shape",
    "mapping_efficiency",
    "sram_reads",
]

DATAFLOWS = ("os", "ws", "is")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class FoldShape:
    """How a GEMM folds onto the array: spatial sizes (``sr`` on rows, ``sc`` on cols), temporal
    depth ``t``, fold count and the fill/drain overhead of one fold (cycles)."""

    sr: int
    sc: int
    t: int
    folds: int
    overhead_cycles: int

    @property
    def cycles_per_fold(self) -> int:
        return self.t + self.overhead_cycles


def _check(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> None:
    for name, v in (("m", m), ("n", n), ("k", k), ("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} is not allowed; expected an integer >= 1")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow={dataflow!r} is not allowed; expected one of "
                         f"{', '.join(DATAFLOWS)}")


def fold_shape(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> FoldShape:
    """Spatial/temporal assignment of an (M, N, K) GEMM on a rows x cols array (table above)."""
    _check(m, n, k, rows, cols, dataflow)
    if dataflow == "os":
        sr, sc, t, over = m, n, k, rows + cols - 2
    elif dataflow == "ws":
        sr, sc, t, over = k, n, m, 2 * rows + cols - 2
    else:  # "is"
        sr, sc, t, over = k, m, n, 2 * rows + cols - 2
    folds = _ceil_div(sr, rows) * _ceil_div(sc, cols)
    return FoldShape(sr=sr, sc=sc, t=t, folds=folds, overhead_cycles=over)


def compute_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str, *,
                   scalesim_offset: bool = True) -> int:
    """Stall-free cycles of one (M, N, K) GEMM: ``folds * cycles_per_fold`` (minus 1 for SCALE-Sim's
    reporting convention when ``scalesim_offset``; use False when summing tiles of one layer)."""
    f = fold_shape(m, n, k, rows, cols, dataflow)
    return f.folds * f.cycles_per_fold - (1 if scalesim_offset else 0)


def mapping_efficiency(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> float:
    """Average fraction of PEs with useful work per fold: Sr/(ceil(Sr/R)R) * Sc/(ceil(Sc/C)C)."""
    f = fold_shape(m, n, k, rows, cols, dataflow)
    return (f.sr / (_ceil_div(f.sr, rows) * rows)) * (f.sc / (_ceil_div(f.sc, cols) * cols))


def sram_reads(m: int, n: int, k: int, rows: int, cols: int,
               dataflow: str) -> tuple[int, int, int]:
    """Operand elements moved between SRAM and the array: (input reads, weight reads, output
    writes), counting partial-sum read-modify-writes as writes.

    * OS: each row-fold of inputs is streamed once per column fold: ``M*K*ceil(N/C)`` input reads,
      ``K*N*ceil(M/R)`` weight reads, ``M*N`` output writes (matches SCALE-Sim's ifmap/filter SRAM
      read counts, see tests).
    * WS: weights are read once (``K*N``), inputs once per column fold (``M*K*ceil(N/C)``), partial
      sums written once per row fold of K (``M*N*ceil(K/R)``).
    * IS: inputs read once (``M*K``), weights once per column fold of M (``K*N*ceil(M/C)``), partial
      sums ``M*N*ceil(K/R)``.
    """
    _check(m, n, k, rows, cols, dataflow)
    if dataflow == "os":
        return m * k * _ceil_div(n, cols), k * n * _ceil_div(m, rows), m * n
    if dataflow == "ws":
        return m * k * _ceil_div(n, cols), k * n, m * n * _ceil_div(k, rows)
    return m * k, k * n * _ceil_div(m, cols), m * n * _ceil_div(k, rows)
