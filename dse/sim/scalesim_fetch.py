"""A SCALE-Sim v3 read buffer's geometry: where each entry sits in the operand's fetch sequence,
how the sequence is cut into lines, and the circular window of active lines.

``read_buffer.py`` of SCALE-Sim 3.0.0 (PyPI ``scalesim``): the fetch sequence F is the operand's
prefetch matrix (``create_*_prefetch_mat``: fold blocks stacked, read diagonal by diagonal or row
by row); its valid (non -1) entries are hashed in order into lines of ``ceil(S/100)`` entries
(``prepare_hashed_buffer``); the active half of the buffer is a window of lines that starts at
line 0 and only moves forward, circularly (``new_prefetch``). `Layout` answers "which valid index
has entry (g, w)" in closed form (or from a prefix count where padding lies inside the blocks);
`Buffer` holds the sizes; `Window` the moves. `dse.sim.scalesim_tiles` walks folds with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Buffer", "Layout", "Window"]

_LINES_PER_BUFFER = 100  # read_buffer.prepare_hashed_buffer: elems_per_set = ceil(size / 100)
_BAND_ENTRIES = 1 << 18  # `Layout.positions` computes this many entries at a time


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _ramp(x: int, cap: int) -> int:
    """sum of clip(v, 0, cap) for v = ..., x-1, x (0 below 0)."""
    if x < 0:
        return 0
    if x <= cap:
        return x * (x + 1) // 2
    return cap * (cap + 1) // 2 + (x - cap) * cap


# -- where each element sits in an operand's fetch sequence --------------------------------------

@dataclass(frozen=True, slots=True)
class Layout:
    """An operand's prefetch matrix: ``blocks`` blocks of ``depth`` rows stacked, ``width`` cols,
    read diagonal by diagonal (``diag``) or row by row; the last block's columns from ``valid_w``
    on are padding (-1)."""

    blocks: int
    depth: int
    width: int
    valid_w: int
    diag: bool
    mask: npt.NDArray[np.bool_] | None = field(default=None, compare=False, repr=False)
    """Valid entries (rows x width), where padding lies inside the blocks too (a convolution
    whose windows run off the input, `ConvWindows`); None: only the last block's columns from
    ``valid_w`` on are padding, and every lookup is a closed form."""
    rows: int = field(init=False)  # blocks * depth, kept as a field: read on every lookup
    _cum: npt.NDArray[np.int64] | None = field(init=False, compare=False, repr=False)
    _ends: tuple[tuple[int, int], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", self.blocks * self.depth)
        object.__setattr__(self, "_cum", None)
        object.__setattr__(self, "_ends", ())
        if self.mask is None:
            return
        if self.mask.shape != (self.rows, self.width):
            raise ValueError(f"mask shape {self.mask.shape} is not (rows, width) = "
                             f"({self.rows}, {self.width})")
        # valid elements before each position of F (read_buffer.prepare_hashed_buffer skips -1)
        pos = self.positions()
        in_f = np.zeros(self.size, dtype=bool)
        in_f[pos.ravel()] = self.mask.ravel()
        cum = np.zeros(self.size + 1, dtype=np.int64)
        np.cumsum(in_f, out=cum[1:])
        # each block's first and last valid element in F (the first and last its fold demands)
        per_block = (self.blocks, self.depth * self.width)
        first = np.where(self.mask, pos, self.size).reshape(per_block).min(axis=1)
        last = np.where(self.mask, pos, -1).reshape(per_block).max(axis=1)
        object.__setattr__(self, "_cum", cum)
        object.__setattr__(self, "_ends", tuple(zip(first.tolist(), last.tolist(), strict=True)))

    def positions(self) -> npt.NDArray[np.int64]:
        """`position` of every (row, column), as one array (rows x width), computed a band of
        rows at a time (the temporaries stay small next to the result)."""
        pos = np.empty((self.rows, self.width), dtype=np.int64)
        w = np.arange(self.width, dtype=np.int64)[None, :]
        band = max(1, _BAND_ENTRIES // self.width)
        for g0 in range(0, self.rows, band):
            g = np.arange(g0, min(g0 + band, self.rows), dtype=np.int64)[:, None]
            if not self.diag:
                pos[g0:g0 + len(g)] = g * self.width + w
                continue
            d = g + w
            a = np.minimum(d, self.rows)
            b = np.maximum(0, d - self.width + 1)
            pos[g0:g0 + len(g)] = (a * (a + 1) // 2 + (d - a) * self.rows - b * (b - 1) // 2
                                   + np.minimum(d, self.rows - 1) - g)
        return pos

    @property
    def size(self) -> int:  # |F|, padding included
        return self.rows * self.width

    @property
    def valid(self) -> int:
        if self._cum is not None:
            return int(self._cum[-1])
        return self.size - self.depth * (self.width - self.valid_w)

    def _diag_start(self, d: int) -> int:
        """Elements on diagonals before ``d`` (closed form of the sum of diagonal lengths)."""
        a = min(d, self.rows)
        b = max(0, d - self.width + 1)
        return a * (a + 1) // 2 + (d - a) * self.rows - b * (b - 1) // 2

    def position(self, g: int, w: int) -> int:
        """Index in F of row ``g``, column ``w`` (create_*_prefetch_mat's diagonal roll-out:
        diagonal ``g + w``, rows in descending order within it)."""
        if not self.diag:
            return g * self.width + w
        d = g + w
        return self._diag_start(d) + min(d, self.rows - 1) - g

    def valid_index(self, g: int, w: int) -> int:
        """Count of valid elements before (g, w) in F: its index among the hashed elements."""
        if self._cum is not None:
            return int(self._cum[self.position(g, w)])
        pad_w = self.width - self.valid_w
        g0 = self.rows - self.depth  # the padded (last) block starts here
        if pad_w == 0:
            return self.position(g, w)
        if not self.diag:
            before = max(0, min(g, self.rows) - g0) * pad_w
            if g >= g0:
                before += max(0, w - self.valid_w)
            return self.position(g, w) - before
        d = g + w
        if d < g0 + self.valid_w:  # no padding element comes before diagonal g0 + valid_w
            return self.position(g, w)
        # padding = rows g0.. x cols valid_w..: on earlier diagonals, column c holds
        # clip(d - g0 - c, 0, depth) of them (summed in closed form by _ramp); on diagonal d,
        # the padding columns before w whose row d - c is in the padded block
        x_hi, x_lo = d - g0 - self.valid_w, d - g0 - self.width + 1
        before = _ramp(x_hi, self.depth) - _ramp(x_lo - 1, self.depth)
        before += max(0, min(w - 1, d - g0) - max(self.valid_w, d - self.rows + 1) + 1)
        return self.position(g, w) - before

    def block_span(self, block: int) -> tuple[int, int] | None:
        """Valid indices of the first and last valid element of ``block`` in F (the first and
        last element its fold demands), or None if the block holds padding only."""
        g0 = block * self.depth
        if self._cum is None:
            wv = self.valid_w if block == self.blocks - 1 else self.width
            return self.valid_index(g0, 0), self.valid_index(g0 + self.depth - 1, wv - 1)
        first, last = self._ends[block]
        if last < 0:
            return None
        return int(self._cum[first]), int(self._cum[last])

    def row_span(self, g: int) -> tuple[int, int] | None:
        """Valid indices of the first and last valid element of row ``g`` of a row-by-row
        layout, or None if the row holds padding only."""
        lo = self.valid_index(g, 0)
        if self._cum is None:
            wv = self.valid_w if g >= self.rows - self.depth else self.width
            return lo, self.valid_index(g, wv - 1)
        end = int(self._cum[(g + 1) * self.width])
        return (lo, end - 1) if end > lo else None

    def diag_of_valid_index(self, idx: int) -> int:
        """Smallest diagonal whose end lies past valid index ``idx`` (padding ignored without a
        mask): the cycle within a skewed fold at which the demand reaches ``idx``."""
        if self._cum is not None:  # the position of the idx-th valid element
            idx = min(int(np.searchsorted(self._cum, idx + 1)) - 1, self.size - 1)
        lo, hi = 0, self.rows + self.width
        while lo < hi:
            mid = (lo + hi) // 2
            if self._diag_start(mid + 1) > idx:
                hi = mid
            else:
                lo = mid + 1
        return lo


# -- the active window of one read buffer --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Buffer:
    """Geometry of one read buffer (read_buffer.set_params / prepare_hashed_buffer), in words."""

    size_words: int
    layout: Layout
    bw_words: int

    @property
    def active_words(self) -> int:
        return _ceil_div(self.size_words, 2)  # int(ceil(size * 0.5)) with active_buf_frac 0.5

    @property
    def prefetch_words(self) -> int:
        return self.size_words - self.active_words

    @property
    def line_words(self) -> int:
        return _ceil_div(self.size_words, _LINES_PER_BUFFER)

    @property
    def lines(self) -> int:  # the last, partial (or empty) set counts too
        return self.layout.valid // self.line_words + 1

    @property
    def active_lines(self) -> int:
        return min(_ceil_div(self.active_words, self.line_words), self.lines)

    @property
    def step_lines(self) -> int:
        return min(_ceil_div(self.prefetch_words, self.line_words),
                   self.lines - self.active_lines)

    @property
    def fill_words(self) -> int:
        """The first fill, before cycle 0: whole request rows of ``bw`` words."""
        rows = min(_ceil_div(self.active_words, self.bw_words),
                   _ceil_div(self.layout.size, self.bw_words))
        return rows * self.bw_words

    @property
    def move_words(self) -> int:
        """One move of the window: ceil(P / bw) request rows of bw words, padding included."""
        return _ceil_div(self.prefetch_words, self.bw_words) * self.bw_words


class Window:
    """The circular window of active lines (read_buffer.active_buffer_set_limits): it starts at
    line 0 and only moves forward, ``step`` lines at a time (read_buffer.new_prefetch)."""

    __slots__ = ("active", "n", "start", "step")

    def __init__(self, buf: Buffer) -> None:
        self.n, self.active, self.step = buf.lines, buf.active_lines, buf.step_lines
        self.start = 0

    def need(self, line: int) -> int:
        """Moves until ``line`` is inside (a jump: all moves fire at once)."""
        d = (line - self.start) % self.n
        if d < self.active:
            return 0
        k = _ceil_div(d - self.active + 1, self.step)
        self.start = (self.start + k * self.step) % self.n
        return k

    def walk(self, lo: int, hi: int) -> tuple[int, int]:
        """Moves while the demand walks forward from line ``lo`` (inside) to ``hi``; returns
        (moves, lines walked from ``lo`` when the first move fires)."""
        first = self.active - (lo - self.start) % self.n  # lines past lo where the window ends
        if hi - lo < first:
            return 0, 0
        k = _ceil_div(hi - lo - first + 1, self.step)
        self.start = (self.start + k * self.step) % self.n
        return k, first
