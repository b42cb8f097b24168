"""Run SCALE-Sim v3 (PyPI ``scalesim==3.0.0``) itself on a few layers, as a peer to check against.

`run_scalesim` writes a config, a topology and an (empty) layout file into a temporary folder, runs
SCALE-Sim's own `scalesim.scale_sim.scalesim` there in USER bandwidth mode, and reads back its
COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv, one dict per layer.

Units: SCALE-Sim has no word size (``single_layer_sim.run`` fixes ``word_size = 1``): its buffer
"kB" are 1024 words each, its bandwidths are words/cycle and its DRAM counts are words. With
``word_bytes=1`` (the only setting SCALE-Sim models) words and bytes coincide.

Bandwidth: in USER mode SCALE-Sim gives each operand its *own* DRAM port - the ifmap buffer's
backing bandwidth is ``[layout] IfmapSRAMBankBandwidth``, the filter's ``FilterSRAMBankBandwidth``
and the ofmap's ``[architecture_presets] Bandwidth`` (``single_layer_sim.run``). This module sets
all three to ``words_per_cycle``, so the three streams run in parallel at that rate each.

This module holds no tests; it imports scalesim lazily so that importing it never fails.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

SCALESIM_VERSION = "3.0.0"


@dataclass(frozen=True, slots=True)
class ConvLayer:
    """One SCALE-Sim topology row: a convolution on a pre-padded ``ifmap_h x ifmap_w`` input."""

    name: str
    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    num_filt: int
    stride: int = 1

    @property
    def ofmap_px(self) -> int:
        """SCALE-Sim's output size, ceil((H - R + S) / S) per side (topology_utils): when the
        stride does not divide H - R it computes one more row (column) of outputs, whose windows
        run off the input (their ifmap entries are padding)."""
        return (-(-(self.ifmap_h - self.filt_h + self.stride) // self.stride)
                * -(-(self.ifmap_w - self.filt_w + self.stride) // self.stride))

    @property
    def gemm_mnk(self) -> tuple[int, int, int]:
        """SCALE-Sim's GEMM view: M output pixels, N filters, K = R*S*C."""
        return self.ofmap_px, self.num_filt, self.filt_h * self.filt_w * self.channels


@dataclass(frozen=True, slots=True)
class GemmLayer:
    """One SCALE-Sim GEMM topology row (``-i gemm``): C[M, N] = A[M, K] @ B[K, N]."""

    name: str
    m: int
    n: int
    k: int

    @property
    def gemm_mnk(self) -> tuple[int, int, int]:
        return self.m, self.n, self.k


def scalesim_unusable_reason() -> str | None:
    """Why SCALE-Sim cannot run here, or None when it can."""
    try:
        import numpy as np
        from scalesim.scale_sim import scalesim  # noqa: F401
    except ImportError as exc:
        return (f"SCALE-Sim {SCALESIM_VERSION} is not installed ({exc}); install the test extra: "
                f"pip install -c constraints.txt scalesim=={SCALESIM_VERSION} 'numpy<2.4'")
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        return (f"SCALE-Sim {SCALESIM_VERSION} fails under NumPy {np.__version__} (it calls int() "
                "on 1-element arrays in read_buffer.prefetch_active_buffer, an error since "
                "NumPy 2.4); install 'numpy<2.4' to run it")
    return None


def _config_text(*, rows: int, cols: int, dataflow: str, ifmap_kib: int, filter_kib: int,
                 ofmap_kib: int, words_per_cycle: int) -> str:
    # Every key SCALE-Sim 3.0.0's scale_config.read_conf_file reads; custom layouts and sparsity
    # off, one SRAM bank (the bank count must divide the bandwidth), no Ramulator trace.
    return f"""[general]
run_name = peer

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {ifmap_kib}
FilterSramSzkB: {filter_kib}
OfmapSramSzkB: {ofmap_kib}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: {words_per_cycle}
Dataflow: {dataflow}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {words_per_cycle}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {words_per_cycle}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""


def _topology_text(layers: list[ConvLayer] | list[GemmLayer]) -> tuple[str, bool]:
    if all(isinstance(la, GemmLayer) for la in layers):
        lines = ["Layer, M, N, K,"]
        lines += [f"{la.name}, {la.m}, {la.n}, {la.k}," for la in layers
                  if isinstance(la, GemmLayer)]
        return "\n".join(lines) + "\n", True
    if all(isinstance(la, ConvLayer) for la in layers):
        lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                 "Num Filter, Strides,"]
        lines += [f"{la.name}, {la.ifmap_h}, {la.ifmap_w}, {la.filt_h}, {la.filt_w}, "
                  f"{la.channels}, {la.num_filt}, {la.stride}," for la in layers
                  if isinstance(la, ConvLayer)]
        return "\n".join(lines) + "\n", False
    raise ValueError("layers must be all ConvLayer or all GemmLayer (one SCALE-Sim run reads one "
                     "topology format)")


def _read_report(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0] if h.strip()]
    return [{h: float(v) for h, v in zip(header, r, strict=False)} for r in rows[1:] if r]


def run_scalesim(layers: list[ConvLayer] | list[GemmLayer], *, rows: int, cols: int,
                 dataflow: str, ifmap_kib: int, filter_kib: int, ofmap_kib: int,
                 words_per_cycle: int, word_bytes: int = 1) -> list[dict[str, float]]:
    """Run SCALE-Sim v3 on ``layers`` and return one dict per layer (same order).

    Keys: ``name``, ``gemm_m/n/k``, ``total_cycles`` (SCALE-Sim's "Total Cycles": the last ofmap
    write cycle, stalls included, the initial buffer fill not), ``total_cycles_incl_prefetch``
    (its "Total Cycles (incl. prefetch)": last ofmap DRAM write minus the first DRAM read, so it
    includes the first fill and the final ofmap drain), ``stall_cycles``, ``compute_cycles``
    (total - stall), ``dram_ifmap_reads``, ``dram_filter_reads``, ``dram_ofmap_writes`` (words,
    = bytes at ``word_bytes=1``), and ``wall_s`` (the whole run's wall time, seconds).
    """
    if word_bytes != 1:
        raise ValueError(f"word_bytes={word_bytes!r} is not allowed; SCALE-Sim 3.0.0 models only "
                         "1-byte words (single_layer_sim.run fixes word_size = 1)")
    for name, v in (("ifmap_kib", ifmap_kib), ("filter_kib", filter_kib),
                    ("ofmap_kib", ofmap_kib), ("words_per_cycle", words_per_cycle)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} is not allowed; SCALE-Sim reads an integer >= 1")
    from scalesim.scale_sim import scalesim

    topo, gemm = _topology_text(layers)
    with tempfile.TemporaryDirectory(prefix="scalesim_peer_") as tmp:
        d = Path(tmp)
        (d / "peer.cfg").write_text(_config_text(
            rows=rows, cols=cols, dataflow=dataflow, ifmap_kib=ifmap_kib, filter_kib=filter_kib,
            ofmap_kib=ofmap_kib, words_per_cycle=words_per_cycle))
        (d / "topo.csv").write_text(topo)
        (d / "layout.csv").write_text("Layer name,\n")
        t0 = time.perf_counter()
        # SCALE-Sim prints progress and, under NumPy 2.x < 2.4, warns on every int() of an
        # (n, 1) array (DeprecationWarning): both are its own noise
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sim = scalesim(save_disk_space=True, verbose=False, config=str(d / "peer.cfg"),
                           topology=str(d / "topo.csv"), layout=str(d / "layout.csv"),
                           input_type_gemm=gemm)
            sim.run_scale(top_path=str(d / "out"))
        wall_s = time.perf_counter() - t0
        compute = _read_report(d / "out" / "peer" / "COMPUTE_REPORT.csv")
        access = _read_report(d / "out" / "peer" / "DETAILED_ACCESS_REPORT.csv")
    out = []
    for la, c, a in zip(layers, compute, access, strict=True):
        m, n, k = la.gemm_mnk
        total, stall = int(c["Total Cycles"]), int(c["Stall Cycles"])
        out.append({
            "name": la.name, "gemm_m": m, "gemm_n": n, "gemm_k": k,
            "total_cycles": total,
            "total_cycles_incl_prefetch": int(c["Total Cycles (incl. prefetch)"]),
            "stall_cycles": stall,
            "compute_cycles": total - stall,
            "dram_ifmap_reads": int(a["DRAM IFMAP Reads"]),
            "dram_filter_reads": int(a["DRAM Filter Reads"]),
            "dram_ofmap_writes": int(a["DRAM OFMAP Writes"]),
            "wall_s": wall_s,
        })
    return out
