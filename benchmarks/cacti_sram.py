"""Regenerate tests/golden/cacti/: CACTI 7's 40 nm SRAM leakage and read energy, one run per cell
flavour, the source of `arch.energy.CACTI_SRAM_LEAKAGE_W_PER_MM2_40NM`.

    git clone https://github.com/HewlettPackard/cacti && make -C cacti
    python benchmarks/cacti_sram.py --cacti cacti/cacti

CACTI is C++ and not on the package registry, so this is run by hand, not in CI; its outputs are
kept in tests/golden/cacti/ and tests/arch/test_cacti_leakage.py checks the constants against them.
Each run is one scratchpad RAM bank, 512 KiB (the LLSQ chip's input or weight buffer at 8 bits)
or 32 KiB: one read/write port, 64-bit port and block, 40 nm, 300 K (a synthesis report's
typical corner), the cell and periphery of one ITRS device flavour (itrs-hp, itrs-lop,
itrs-lstp), everything else CACTI's own sample ``cache.cfg``. Prints the standby leakage
(subthreshold plus gate) per mm^2 and the read energy of each bank.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "cacti"
FLAVOURS = ("itrs-hp", "itrs-lop", "itrs-lstp")
SIZES_BYTES = {"": 512 * 1024, "-32kib": 32 * 1024}
"""Bank sizes run, by file-name suffix: the LLSQ buffer (the leakage constant's source) and the
32 KiB bank `arch.energy` charges per access (a read-energy check in docs/arch.md)."""
NODE_UM = 0.040
TEMPERATURE_K = 300

SETTINGS = {
    "-block size (bytes)": "8",
    "-associativity": "1",
    "-technology (u)": f"{NODE_UM:.3f}",
    "-output/input bus width": "64",
    "-operating temperature (K)": str(TEMPERATURE_K),
    "-cache type": '"ram"',
}
"""Lines of CACTI's sample cache.cfg replaced for these runs (the device flavour lines too)."""


def config(sample: str, flavour: str, size_bytes: int) -> str:
    """CACTI's sample ``cache.cfg`` text with `SETTINGS`, ``size_bytes`` and every ``itrs-hp``
    cell/periphery choice set to ``flavour``."""
    lines = []
    for line in sample.splitlines():
        for key, value in {"-size (bytes)": str(size_bytes), **SETTINGS}.items():
            if line.startswith(key + " "):
                line = f"{key} {value}"
        if line.startswith("-") and "type - " in line:
            line = line.replace('"itrs-hp"', f'"{flavour}"')
        lines.append(line)
    return "\n".join(lines) + "\n"


def _number(output: str, label: str) -> float:
    found = re.search(re.escape(label) + r" ([0-9.eE+-]+)", output)
    if found is None:
        raise ValueError(f"CACTI output has no {label!r} line")
    return float(found[1])


def leakage_mw_per_mm2(output: str) -> tuple[float, float, float]:
    """(bank leakage mW, bank area mm^2, leakage mW/mm^2) from a CACTI output; the leakage is
    CACTI's standby leakage, subthreshold plus gate."""
    leak = (_number(output, "Total leakage power of a bank (mW):")
            + _number(output, "Total gate leakage power of a bank (mW):"))
    area = _number(output, "Data array: Area (mm2):")
    return leak, area, leak / area


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cacti", type=Path, required=True, help="the built cacti binary")
    args = parser.parse_args()
    cacti = args.cacti.resolve()
    sample = (cacti.parent / "cache.cfg").read_text()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for flavour in FLAVOURS:
        for suffix, size_bytes in SIZES_BYTES.items():
            cfg = GOLDEN / f"{flavour}{suffix}.cfg"
            cfg.write_text(config(sample, flavour, size_bytes))
            out = subprocess.run([str(cacti), "-infile", str(cfg)], cwd=cacti.parent,
                                 check=True, capture_output=True, text=True).stdout
            (GOLDEN / f"{flavour}{suffix}.out").write_text(out)
            (GOLDEN / f"{cfg.name}.out").unlink(missing_ok=True)  # CACTI's one-line CSV of it
            leak, area, per_mm2 = leakage_mw_per_mm2(out)
            read_pj = _number(out, "Total dynamic read energy per access (nJ):") * 1e3
            print(f"{flavour}, {size_bytes // 1024} KiB: {leak:.4g} mW over {area:.4g} mm^2 = "
                  f"{per_mm2:.4g} mW/mm^2; 64-bit read {read_pj:.3g} pJ")


if __name__ == "__main__":
    main()
