"""Core groups and the on-chip network between them.

An `arch.Accelerator` is homogeneous by default: ``cores`` identical cores. With ``core_groups``
it holds several groups of cores that differ in array shape, MAC precision or SRAM per core -
e.g. a few 16x16-bit cores for a network's first and last layers beside 2-bit cores for its body
(the PACT-SAWB paper keeps those layers at high precision, Section 5). Each `CoreGroup` names only
what differs; every field it leaves as None is the accelerator's. The area model sizes each group
as cores x core area, exactly as a homogeneous design (`arch.area`), and the accelerator's area is
their sum.

Tensors that move between groups cross the on-chip network (``noc``):

* ``"none"``: there is no network between groups; a tensor another group reads is stored to DRAM
  by its producer and loaded from DRAM by its consumer (today's residency rule at a group edge).
* ``"bus"``: one shared link of ``noc_bytes_per_cycle`` bytes per cycle that every transfer
  crosses in one hop; with ``noc_multicast`` a tensor several groups read crosses it once.
* ``"mesh"``: the groups sit on a 2-D grid (row-major, ``ceil(sqrt(G))`` columns), each pair of
  neighbours joined by one link per direction of ``noc_bytes_per_cycle``; a transfer takes the XY
  route, pays ``noc_hop_cycles`` per hop and shares every link on its way (multicast: the union of
  the XY routes, each link once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["NOC_TOPOLOGIES", "CoreGroup", "describe_groups", "mesh_position", "noc_route"]

NOC_TOPOLOGIES = ("none", "bus", "mesh")
"""See the module docstring."""

_GROUP_FIELDS = ("cores", "rows", "cols", "mac_bits", "sram_kib", "name")


@dataclass(frozen=True, slots=True)
class CoreGroup:
    """``cores`` cores of one kind; ``rows``, ``cols``, ``mac_bits`` and ``sram_kib`` (per core)
    default to the accelerator's when None. ``name`` labels the group in reports."""

    cores: int
    rows: int | None = None
    cols: int | None = None
    mac_bits: int | tuple[int, int] | None = None
    sram_kib: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.cores, bool) or not isinstance(self.cores, int) or self.cores < 1:
            raise ValueError(f"core_groups cores={self.cores!r} is not allowed; expected an "
                             "integer >= 1 (a group needs at least one core)")
        if isinstance(self.mac_bits, list):
            object.__setattr__(self, "mac_bits", tuple(self.mac_bits))
        elif isinstance(self.mac_bits, int) and not isinstance(self.mac_bits, bool):
            object.__setattr__(self, "mac_bits", (self.mac_bits, self.mac_bits))
        if not isinstance(self.name, str):
            raise ValueError(f"core_groups name={self.name!r} is not allowed; expected a string")

    @classmethod
    def from_value(cls, value: Any, index: int) -> CoreGroup:
        """A group from a `CoreGroup` or a mapping of its fields (a TOML/YAML table)."""
        if isinstance(value, CoreGroup):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"core_groups[{index}]={value!r} is not allowed; expected a table of "
                             f"{', '.join(_GROUP_FIELDS)}")
        unknown = sorted(set(value) - set(_GROUP_FIELDS))
        if unknown:
            raise ValueError(f"core_groups[{index}]: unknown key(s) {unknown}; allowed: "
                             f"{', '.join(_GROUP_FIELDS)}")
        if "cores" not in value:
            raise ValueError(f"core_groups[{index}]: cores is missing; expected an integer >= 1")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as plain values (``mac_bits`` as a list)."""
        out: dict[str, Any] = {}
        for f in _GROUP_FIELDS:
            v = getattr(self, f)
            if v is None or (f == "name" and not v):
                continue
            out[f] = list(v) if isinstance(v, tuple) else v
        return out


def mesh_position(group: int, groups: int) -> tuple[int, int]:
    """(x, y) of ``group`` on the row-major grid of ``ceil(sqrt(groups))`` columns."""
    width = max(1, math.ceil(math.sqrt(groups)))
    return group % width, group // width


def noc_route(src: int, dst: int, groups: int) -> list[tuple[int, int]]:
    """The directed mesh links (from group, to group) of the XY route from ``src`` to ``dst``."""
    width = max(1, math.ceil(math.sqrt(groups)))
    (x, y), (tx, ty) = mesh_position(src, groups), mesh_position(dst, groups)
    links: list[tuple[int, int]] = []
    while x != tx:
        nx_ = x + (1 if tx > x else -1)
        links.append((y * width + x, y * width + nx_))
        x = nx_
    while y != ty:
        ny = y + (1 if ty > y else -1)
        links.append((y * width + x, ny * width + x))
        y = ny
    return links


def describe_groups(groups: tuple[CoreGroup, ...]) -> str:
    """One line for report rows, e.g. ``"4 cores 16x16b 16x16 + 60 cores"`` ('' if homogeneous);
    each group shows what it sets."""
    parts = []
    for g in groups:
        bits = g.mac_bits
        words = [f"{g.cores} cores"]
        if g.name:
            words.insert(0, g.name + ":")
        if isinstance(bits, tuple):
            words.append(f"{bits[0]}x{bits[1]}b")
        if g.rows or g.cols:
            words.append(f"{g.rows or '-'}x{g.cols or '-'} array")
        if g.sram_kib is not None:
            words.append(f"{g.sram_kib:g} KiB")
        parts.append(" ".join(words))
    return " + ".join(parts)
