"""SCALE-Sim v3's im2col ifmap: padding entries and repeated addresses, for `scalesim_tiles`.

A convolution's ifmap operand matrix (``operand_matrix.calc_ifmap_elem_addr``) holds one input
address per (output pixel, window index). Two things then differ from a GEMM's:

* **Padding.** SCALE-Sim sizes the output ceil((H - R + S) / S) per side (``topology_utils``):
  when the stride does not divide H - R, the last output row and column read off the input and
  their entries are -1. A -1 is fetched as a word (it fills request rows) but never hashed into a
  buffer line nor demanded (``read_buffer.prepare_hashed_buffer`` and ``service_reads`` skip it).
* **Repeated addresses.** Where windows overlap (filter larger than stride), one input address
  sits in several entries, so in several buffer lines. ``read_buffer.active_buffer_hit`` asks
  whether *any* line of the active window holds the address: a demanded entry hits on a copy in
  another line, and misses (moving the window, ``new_prefetch``, until a line holding it comes
  in) only when no copy is inside. `Copies` replays that entry by entry, in demand order.

Nothing here knows tiles, SimPy or bits; `dse.sim.scalesim_tiles` uses both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dse.sim.scalesim_fetch import Window

__all__ = ["ConvWindows", "Copies", "ifmap_addresses"]

_CHUNK = 1024  # demanded entries checked per vector step (a miss restarts from the next one)

IntArray = npt.NDArray[np.integer[Any]]  # int64 addresses, int32 lines, int16 slots


def _check_int(name: str, v: object, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name}={v!r} is not allowed; expected an integer >= {low}")


@dataclass(frozen=True, slots=True)
class ConvWindows:
    """Where a convolution's windows lie on its input, as SCALE-Sim builds the ifmap operand
    matrix (``operand_matrix.calc_ifmap_elem_addr``): entry (output pixel p, window index j)
    reads input row ``orow * stride_h + j // (s * channels)``, column ``ocol * stride_w +
    (j // channels) % s``, channel ``j % channels``, and is padding (-1) where that lies off the
    ``h`` x ``w`` (pre-padded) input."""

    h: int
    w: int
    r: int
    s: int
    stride_h: int
    stride_w: int
    ho: int
    wo: int
    channels: int

    def __post_init__(self) -> None:
        for name in ("h", "w", "r", "s", "stride_h", "stride_w", "ho", "wo", "channels"):
            _check_int(f"ConvWindows.{name}", getattr(self, name), 1)

    @property
    def ragged(self) -> bool:
        """Whether some window runs off the input (else no entry is padding)."""
        return ((self.ho - 1) * self.stride_h + self.r > self.h
                or (self.wo - 1) * self.stride_w + self.s > self.w)

    @property
    def overlapping(self) -> bool:
        """Whether windows overlap, so that input addresses repeat in the operand matrix."""
        return self.r > self.stride_h or self.s > self.stride_w

    def address(self, pixel: IntArray, j: IntArray) -> tuple[IntArray, IntArray]:
        """(input address, copy slot) of each (output pixel, window index) entry, broadcast
        over the two arrays; the address is -1 where the entry is padding (batch: image
        ``pixel // (ho * wo)`` follows the previous one in memory). An address recurs at most
        once per slot, ``(c_row // stride_h) * ceil(s / stride_w) + c_col // stride_w``: the
        window offsets that can reach the same input row (column) differ by whole strides."""
        image, p = np.divmod(pixel, self.ho * self.wo)  # per pixel ...
        orow, ocol = np.divmod(p, self.wo)
        row0, col0 = orow * self.stride_h, ocol * self.stride_w
        base = ((image * self.h + row0) * self.w + col0) * self.channels
        c_row, rest = np.divmod(j, self.s * self.channels)  # ... and per window index, then
        c_col, ch = np.divmod(rest, self.channels)  # combined (broadcast) once
        off = (c_row * self.w + c_col) * self.channels + ch
        slot = (c_row // self.stride_h) * -(-self.s // self.stride_w) + c_col // self.stride_w
        valid = (row0 + c_row < self.h) & (col0 + c_col < self.w)
        return np.where(valid, base + off, -1), np.broadcast_to(slot, valid.shape)

    @property
    def slots(self) -> int:
        return -(-self.r // self.stride_h) * -(-self.s // self.stride_w)


def ifmap_addresses(conv: ConvWindows, m: int, k: int, dataflow: str, blocks: int, depth: int,
                    width: int) -> tuple[IntArray, IntArray]:
    """The ifmap prefetch matrix (``blocks * depth`` rows x ``width`` columns) of
    create_ifmap_prefetch_mat, as (addresses, copy slots): OS stacks K x R blocks of pixels, WS
    M x R blocks of window indices, IS K x C blocks of pixels; fold padding (past M or K) is -1."""
    b = np.arange(blocks, dtype=np.int64)[:, None, None]
    g = np.arange(depth, dtype=np.int64)[None, :, None]
    w = np.arange(width, dtype=np.int64)[None, None, :]
    if dataflow == "ws":  # row: pixel, column: window index
        j = b * width + w
        addr, slot = conv.address(g, np.minimum(j, k - 1))
        addr = np.where(j < k, addr, -1)
    else:  # os, is: row: window index, column: pixel
        pixel = b * width + w
        addr, slot = conv.address(np.minimum(pixel, m - 1), g)
        addr = np.where(pixel < m, addr, -1)
    shape = (blocks * depth, width)
    return addr.reshape(shape), np.broadcast_to(slot.astype(np.int16), addr.shape).reshape(shape)


class Copies:
    """An operand whose addresses repeat: each entry's buffer lines (one per copy) and the
    order in which a fold demands its entries, to replay ``service_reads`` entry by entry.

    ``addresses``/``slots`` (rows x width, -1 padding; `ifmap_addresses`) and ``positions``
    (index of each entry in the fetch sequence F) come from the operand's layout; entries are
    hashed in F order, ``e`` valid entries per line (duplicates count): an entry's line is its
    valid index // e."""

    def __init__(self, addresses: IntArray, slots: IntArray, n_slots: int, positions: IntArray,
                 depth: int, diag: bool, e: int) -> None:
        width = addresses.shape[1]
        addr = addresses.ravel()
        valid = addr >= 0
        in_f = np.zeros(valid.size, dtype=bool)
        in_f[positions.ravel()] = valid
        before = np.cumsum(in_f, dtype=np.int64)  # valid entries up to each position of F
        before -= in_f
        del in_f
        line = (before[positions.ravel()] // e).astype(np.int32)
        del before
        line[~valid] = -1
        # the lines holding each address (padding, address -1, lands in a spare last row)
        occ = np.full((int(addr.max(initial=0)) + 2, n_slots), -1, dtype=np.int32)
        occ[addr, slots.ravel()] = line
        # an empty slot repeats one of the address's lines (a copy changes nothing)
        empty = occ < 0
        occ[empty] = np.broadcast_to(occ.max(axis=1, keepdims=True), occ.shape)[empty]
        del empty
        self._occ = occ
        self._addr, self._line = addr, line
        self._width, self._depth = width, depth
        # each row's first and last line (rows of a block, or a fold's rows, lie between them)
        by_row = line.reshape(-1, width)
        self._row_lo = np.where(by_row >= 0, by_row, np.iinfo(np.int32).max).min(axis=1)
        self._row_hi = by_row.max(axis=1)
        # a skewed fold demands its block one diagonal per cycle, rows descending in one
        # (create_*_demand_mat skews the block: the order of F within the block)
        gl, wl = np.divmod(np.arange(depth * width, dtype=np.int64), width)
        order = np.lexsort((-gl, gl + wl)) if diag else np.arange(depth * width)
        self._block_order, self._block_cycle = order, (gl + wl)[order]

    def block_moves(self, win: Window, block: int, offset: int) -> Iterator[tuple[int, int]]:
        """(fold cycle, moves) of a skewed fold streaming ``block`` (``offset`` idle cycles
        first)."""
        if self._inside(win, block * self._depth, (block + 1) * self._depth):
            return
        yield from self._moves(win, block * self._depth * self._width + self._block_order,
                               self._block_cycle + offset)

    def row_moves(self, win: Window, block: int, r0: int, r1: int,
                  rows: int) -> Iterator[tuple[int, int]]:
        """(fold cycle, moves) of rows ``r1-1 .. r0`` of ``block``, bottom-up, one per cycle."""
        if self._inside(win, block * self._depth + r0, block * self._depth + r1):
            return
        j = np.arange(r1 - 1, r0 - 1, -1, dtype=np.int64)[:, None]
        idx = (block * self._depth + j) * self._width + np.arange(self._width)[None, :]
        cycle = np.broadcast_to(rows - 1 - (j - r0), idx.shape)
        yield from self._moves(win, idx.ravel(), cycle.ravel())

    def _inside(self, win: Window, g0: int, g1: int) -> bool:
        """Whether rows g0..g1-1 lie in lines the window holds: then every entry hits."""
        hi = int(self._row_hi[g0:g1].max())
        if hi < 0:  # padding only
            return True
        lo = int(self._row_lo[g0:g1].min())
        return (lo - win.start) % win.n + hi - lo < win.active

    def _moves(self, win: Window, idx: IntArray, cycle: IntArray) -> Iterator[tuple[int, int]]:
        """Demand entries ``idx`` in order (padding skipped): an entry none of whose lines is
        in the window moves it on by ``step`` lines until the first copy comes in
        (service_reads' while-not-hit loop)."""
        keep = self._line[idx] >= 0
        idx, cycle = idx[keep], cycle[keep]
        own = self._line[idx]
        i = 0
        while i < len(idx):
            # an entry whose own line is inside hits; the others look at their copies
            out = np.flatnonzero((own[i:i + _CHUNK] - win.start) % win.n >= win.active)
            if len(out):
                dist = (self._occ[self._addr[idx[i + out]]] - win.start) % win.n
                out = out[(dist >= win.active).all(axis=1)]
            if not len(out):
                i += _CHUNK
                continue
            miss = int(out[0])
            near = int(((self._occ[self._addr[idx[i + miss]]] - win.start) % win.n).min())
            k = (near - win.active) // win.step + 1
            win.start = (win.start + k * win.step) % win.n
            yield int(cycle[i + miss]), k
            i += miss + 1
