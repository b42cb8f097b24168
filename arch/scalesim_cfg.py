"""SCALE-Sim ``.cfg`` files -> `Accelerator` (SCALE-Sim v2 and v3 layouts).

SCALE-Sim (Samajdar et al., ISPASS 2020) simulates one ``ArrayHeight x ArrayWidth`` systolic
array with three double-buffered scratchpads (ifmap, filter, ofmap, sized in KiB of 1-byte words)
and one backing-store port per scratchpad. What maps onto an `Accelerator`:

=====================================  =====================================================
SCALE-Sim                              Accelerator
=====================================  =====================================================
``ArrayHeight`` / ``ArrayWidth``       ``rows`` / ``cols`` (``cores = 1``)
``Dataflow`` (os / ws / is)            ``dataflow``
``IfmapSramSzkB`` / ``Filter..`` /     ``buffers = "split"``, ``ifmap_kib`` / ``filter_kib`` /
``OfmapSramSzkB``                      ``ofmap_kib`` (``sram_kib`` = their sum on a design
                                       without split buffers), ``double_buffered = True``
``InterfaceBandwidth = USER``:         ``dram_gbps`` = (ifmap + filter + ofmap words/cycle)
port bandwidths in words/cycle         x ``word_bytes`` x ``freq_ghz``; one DRAM channel per
(v3: ``IfmapSRAMBankBandwidth``,       operand (``dram_channels = 3``,
``FilterSRAMBankBandwidth``,           ``dram_channel_map = "by_operand"``)
``Bandwidth``; v2: ``Bandwidth``)
``InterfaceBandwidth = CALC``          ``dram_gbps = inf`` (SCALE-Sim sizes the bandwidth so
                                       nothing stalls)
``run_name``                           ``name``
=====================================  =====================================================

SCALE-Sim has no clock, no precision and no area: ``freq_ghz``, ``mac_bits`` (default 8: its
words are bytes) and any other field are keyword arguments. Everything else in the file (address
offsets, request buffers, SRAM banking, sparsity, Ramulator) has no counterpart and is listed in
`ScaleSimConfig.unmapped`; `from_scalesim` logs it.
"""

from __future__ import annotations

import configparser
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arch.spec import Accelerator

__all__ = ["ScaleSimConfig", "from_scalesim", "read_scalesim"]

log = logging.getLogger(__name__)

_ARCH = "architecture_presets"
# keys this module reads, by section (configparser lower-cases keys)
_READ = {"general": {"run_name"},
         _ARCH: {"arrayheight", "arraywidth", "ifmapsramszkb", "filtersramszkb", "ofmapsramszkb",
                 "dataflow", "bandwidth"},
         "run_presets": {"interfacebandwidth"},
         "layout": {"ifmapsrambankbandwidth", "filtersrambankbandwidth"}}


@dataclass(frozen=True, slots=True)
class ScaleSimConfig:
    """The parts of a SCALE-Sim configuration qdse can use, and the rest (``unmapped``)."""

    run_name: str
    rows: int
    cols: int
    ifmap_kib: float
    filter_kib: float
    ofmap_kib: float
    dataflow: str
    bandwidth_words_per_cycle: tuple[int, int, int] | None
    """(ifmap, filter, ofmap) backing-store words per cycle; None = SCALE-Sim's CALC mode."""
    unmapped: dict[str, str] = field(default_factory=dict)
    """``section.key -> value`` of every setting with no `Accelerator` counterpart."""

    def accelerator(self, *, word_bytes: int = 1, **fields: Any) -> Accelerator:
        """The `Accelerator` of this configuration (see the module table); ``fields`` override
        or add any `Accelerator` field (``freq_ghz``, ``mac_bits``, ``cores``, ...)."""
        if isinstance(word_bytes, bool) or not isinstance(word_bytes, int) or word_bytes < 1:
            raise ValueError(f"word_bytes={word_bytes!r} is invalid; expected an int >= 1 "
                             "(SCALE-Sim's words are 1 byte)")
        known = set(Accelerator.__dataclass_fields__)
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown Accelerator field(s) {unknown}; allowed: "
                             f"{', '.join(Accelerator.__dataclass_fields__)}")
        spec: dict[str, Any] = dict(cores=1, rows=self.rows, cols=self.cols, mac_bits=(8, 8),
                                    dataflow=self.dataflow, name=self.run_name)
        if "buffers" in known:          # split scratchpads, as SCALE-Sim has them
            spec.update(buffers="split", ifmap_kib=self.ifmap_kib, filter_kib=self.filter_kib,
                        ofmap_kib=self.ofmap_kib, double_buffered=True)
        else:
            spec["sram_kib"] = self.ifmap_kib + self.filter_kib + self.ofmap_kib
        freq_ghz = float(fields.get("freq_ghz", Accelerator.__dataclass_fields__["freq_ghz"]
                                    .default))
        if self.bandwidth_words_per_cycle is None:
            spec["dram_gbps"] = math.inf
        else:
            words = sum(self.bandwidth_words_per_cycle)
            spec["dram_gbps"] = words * word_bytes * freq_ghz
            if "dram_channel_map" in known:
                spec.update(dram_channels=3, dram_channel_map="by_operand")
        spec.update(fields)
        return Accelerator(**spec)


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"config_cfg={str(path)!r}: {what}")


def read_scalesim(config_cfg: str | Path) -> ScaleSimConfig:
    """Parse a SCALE-Sim ``.cfg``; ValueError names the file, section, key and what is allowed."""
    path = Path(config_cfg)
    if not path.is_file():
        raise _fail(path, "no such file; expected a SCALE-Sim .cfg file")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except UnicodeDecodeError as e:
        raise _fail(path, f"is not a text file ({e.reason} at byte {e.start}); expected a "
                    "SCALE-Sim .cfg (INI) file") from e
    except configparser.Error as e:
        reason = "; ".join(line.strip() for line in e.message.splitlines() if line.strip())
        raise _fail(path, f"is not a SCALE-Sim .cfg (INI) file: {reason}") from e

    def get(section: str, key: str, default: str | None = None) -> str:
        if parser.has_option(section, key):
            return parser.get(section, key).split("#")[0].strip()
        if default is not None:
            return default
        raise _fail(path, f"[{section}] {key} is missing; a SCALE-Sim config needs "
                    "[architecture_presets] ArrayHeight, ArrayWidth, IfmapSramSzkB, "
                    "FilterSramSzkB, OfmapSramSzkB and Dataflow")

    def number(section: str, key: str, value: str, *, integer: bool) -> float:
        try:
            v = int(value) if integer else float(value)
        except ValueError:
            v = -1
        if v <= 0 or not math.isfinite(v):
            kind = "an integer" if integer else "a number"
            raise _fail(path, f"[{section}] {key}={value!r} is invalid; expected {kind} > 0")
        return v

    rows = int(number(_ARCH, "ArrayHeight", get(_ARCH, "arrayheight"), integer=True))
    cols = int(number(_ARCH, "ArrayWidth", get(_ARCH, "arraywidth"), integer=True))
    kib = [number(_ARCH, k, get(_ARCH, k.lower()), integer=False)
           for k in ("IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB")]
    dataflow = get(_ARCH, "dataflow").lower()
    if dataflow not in ("os", "ws", "is"):
        raise _fail(path, f"[{_ARCH}] Dataflow={dataflow!r} is invalid; expected os, ws or is")
    mode = get("run_presets", "interfacebandwidth", "CALC").upper()
    if mode not in ("CALC", "USER"):
        raise _fail(path, f"[run_presets] InterfaceBandwidth={mode!r} is invalid; expected "
                    "CALC or USER")
    bandwidth: tuple[int, int, int] | None = None
    if mode == "USER":
        raw = get(_ARCH, "bandwidth")
        values = [int(number(_ARCH, "Bandwidth", v.strip(), integer=True))
                  for v in raw.split(",") if v.strip()]
        if len(set(values)) != 1:
            raise _fail(path, f"[{_ARCH}] Bandwidth={raw!r}: per-layer bandwidths are not "
                        "supported; expected one number of words per cycle")
        ofmap = values[0]
        # v3 reads the ifmap/filter ports from [layout]; v2 has one Bandwidth for all three
        ifmap = int(number("layout", "IfmapSRAMBankBandwidth",
                           get("layout", "ifmapsrambankbandwidth", str(ofmap)), integer=True))
        filt = int(number("layout", "FilterSRAMBankBandwidth",
                          get("layout", "filtersrambankbandwidth", str(ofmap)), integer=True))
        bandwidth = (ifmap, filt, ofmap)
    unmapped = {f"{s}.{k}": v for s in parser.sections() for k, v in parser.items(s)
                if k not in _READ.get(s, set())}
    if bandwidth is not None and len(set(bandwidth)) > 1:
        unmapped["bandwidth split"] = (f"ifmap/filter/ofmap ports of {bandwidth} words/cycle; "
                                       "qdse splits dram_gbps evenly over its channels")
    return ScaleSimConfig(run_name=get("general", "run_name", path.stem), rows=rows, cols=cols,
                          ifmap_kib=kib[0], filter_kib=kib[1], ofmap_kib=kib[2],
                          dataflow=dataflow, bandwidth_words_per_cycle=bandwidth,
                          unmapped=unmapped)


def from_scalesim(config_cfg: str | Path, *, word_bytes: int = 1,
                  **fields: Any) -> Accelerator:
    """The `Accelerator` a SCALE-Sim ``.cfg`` describes (module doc-string: what maps to what).

    ``fields`` set what SCALE-Sim leaves open (``freq_ghz``, ``mac_bits``, ``node_nm``, ...) or
    override the file. Settings without a counterpart are logged at INFO level; read them with
    `read_scalesim`.
    """
    cfg = read_scalesim(config_cfg)
    if cfg.unmapped:
        log.info("SCALE-Sim settings with no Accelerator counterpart (ignored): %s",
                 ", ".join(f"{k}={v}" for k, v in cfg.unmapped.items()))
    return cfg.accelerator(word_bytes=word_bytes, **fields)
