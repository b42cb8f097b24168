"""SCALE-Sim v3's buffer fill and re-fetch behaviour as a sequence of tiles for the event engine.

SCALE-Sim v3 (PyPI ``scalesim==3.0.0``) gives each operand its own double-buffered SRAM and its
own DRAM port (``memory/double_buffered_scratchpad_mem.py``). What it moves, per read operand
(``memory/read_buffer.py``), in words (SCALE-Sim fixes ``word_size = 1``):

* the buffer of ``S`` words is split ``A = ceil(S/2)`` active, ``P = S - A`` prefetch;
* the operand's *fetch sequence* F is its operand matrix cut in folds and, for the skewed
  operands, read out diagonal by diagonal (``create_*_prefetch_mat`` of the dataflow);
* F's valid (non-padding) elements are grouped in lines of ``e = ceil(S/100)``; the active window
  holds ``ceil(A/e)`` consecutive lines, circularly, starting at line 0;
* the array's demand walks the folds in order; an element outside the window moves the window on
  by ``ceil(P/e)`` lines, circularly, until the element is inside, and *each* move is one DRAM
  request of ``ceil(P/bw)*bw`` words (``new_prefetch``); the first fill is
  ``min(ceil(A/bw), ceil(|F|/bw))*bw`` words, before cycle 0 (``prefetch_active_buffer``).

So the window only moves forward: a fold that needs data behind the window (an OS filter block
used again for the next row fold, a WS ifmap pass per column fold, or the first elements of a fold
that F's diagonal order put just before the previous fold's last ones) costs a trip around the
whole ring: one full re-fetch of the operand. `scalesim_tiles` replays that window fold by fold
(two to ``2R`` demand points per fold and operand, each O(1)), and turns the moves into tiles.

Each move of operand X is one request stream of ``L = ceil(P/bw)`` cycles plus one cycle of port
latency, chained after the previous one (``new_prefetch`` issues at ``last_prefetch_cycle + 1``,
not when the array asks, and never waits for buffer space); the array stalls until the move's
data is back. Ofmap words go to a write buffer that drains half its size at a time at ``bw``
words/cycle and blocks the array only when full (``write_buffer.py``). To reproduce SCALE-Sim's
cycles, play the tiles that way: three ports, each read port's transfers back to back from
cycle 0 (a double buffer that lets a load start only when its half is free comes out up to
+60 % slower on a layer), tile 0's reads before cycle 0.

A read buffer's lines and window live in `dse.sim.scalesim_fetch`. A convolution given as
`ConvWindows` (`dse.sim.scalesim_im2col`) adds SCALE-Sim's im2col specifics to its ifmap: padding
entries where windows run off the input (a mask on the fetch sequence, same walk), and repeated
addresses where windows overlap (an entry hits on any copy in the window: its demand is replayed
entry by entry instead of walked).

Nothing here knows SimPy, bits or cores: `dse.sim.systolic` stays the compute-cycle source.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from dse.sim.scalesim_fetch import Buffer, Layout, Window
from dse.sim.scalesim_im2col import ConvWindows, Copies, ifmap_addresses
from dse.sim.systolic import fold_shape

__all__ = ["ConvWindows", "Tile", "dram_traffic_words", "scalesim_tiles"]

_MOVE_GROUPS = 16  # a walk's moves are timed in at most this many groups (tiny buffers: many)
# im2col entries above which a convolution's geometry is dropped (its replay holds ~40 bytes per
# entry: 2**23 entries, ~320 MB; ResNet-50's largest layer has 1.8 M): the layer then runs as a
# GEMM - padding counted as data, repeated addresses as distinct (`scalesim_tiles`)
_MAX_IM2COL_ENTRIES = 1 << 23


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Tile:
    """One step of a layer's tile loop: the array computes ``compute_cycles`` once this tile's
    ``ifmap_bytes`` and ``filter_bytes`` are in the buffer and the previous tile is done; it then
    leaves ``ofmap_bytes`` to drain to DRAM. ``repeat`` identical tiles follow each other."""

    compute_cycles: int
    ifmap_bytes: int
    filter_bytes: int
    ofmap_bytes: int
    repeat: int = 1

    def __post_init__(self) -> None:
        for name in ("compute_cycles", "ifmap_bytes", "filter_bytes", "ofmap_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"Tile.{name}={v!r} is not allowed; expected an integer >= 0")
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise ValueError(f"Tile.repeat={self.repeat!r} is not allowed; expected an integer "
                             ">= 1")


# -- the fold walk: when each window moves --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Operand:
    """How one read operand is demanded: its buffer, whether its folds stream a diagonal block
    (skewed, ``offset`` idle lines first) or read rows ``r0..r1-1`` of a block bottom-up."""

    buf: Buffer
    skewed: bool
    offset: int
    repeats: bool = False
    copies: Copies | None = None  # addresses repeat: replay the demand entry by entry


def _diag_points(op: _Operand, win: Window, block: int) -> Iterator[tuple[int, int]]:
    """(fold cycle, moves) of a skewed block: its first element, then the walk to its last."""
    lay, e = op.buf.layout, op.buf.line_words
    t, g0 = lay.depth, block * lay.depth
    span = lay.block_span(block)
    if span is None:  # padding only: the demand skips it
        return
    lo, hi = span[0] // e, span[1] // e
    k = win.need(lo)
    if k:
        yield op.offset, k
    k, first = win.walk(lo, hi)
    groups = min(k, _MOVE_GROUPS)
    for j in range(groups):  # move i fires when the demand reaches the line past the window
        i = j * k // groups  # (moves in up to _MOVE_GROUPS groups, each at its first move)
        d = lay.diag_of_valid_index((lo + first + i * win.step) * e) - g0
        yield op.offset + min(max(d, 0), t + lay.width - 2), (j + 1) * k // groups - i


def _row_points(op: _Operand, win: Window, block: int, r0: int, r1: int,
                rows: int) -> Iterator[tuple[int, int]]:
    """(fold cycle, moves) of rows r1-1 .. r0 of a block, one row per cycle (flipped demand).

    With ``op.repeats`` (a convolution's ifmap whose windows overlap), the lower rows' addresses
    recur in rows the window already holds, so only the first row can move it."""
    lay, e = op.buf.layout, op.buf.line_words
    for j in range(r1 - 1, r0 - 1, -1):
        span = lay.row_span(block * lay.depth + j)
        if span is None:  # padding only: the demand skips it
            continue
        lo = span[0] // e
        k = win.need(lo) + win.walk(lo, span[1] // e)[0]
        if k:
            yield rows - 1 - (j - r0), k
        if op.repeats:
            return


def _operands(m: int, n: int, k: int, rows: int, cols: int, dataflow: str, if_words: int,
              f_words: int, bw: int, repeats: bool,
              conv: ConvWindows | None = None) -> tuple[_Operand, _Operand]:
    """The ifmap and filter prefetch layouts of systolic_compute_{os,ws,is}.py; ``conv`` (a
    convolution whose windows run off its input) puts padding inside the ifmap's blocks."""
    def blocks(dim: int, width: int) -> tuple[int, int]:  # (block count, valid width of the last)
        b = _ceil_div(dim, width)
        return b, dim - (b - 1) * width

    def ifmap(dim: int, depth: int, width: int, diag: bool, skewed: bool, offset: int,
              ) -> _Operand:
        b, wv = blocks(dim, width)
        if conv is None or not (conv.ragged or conv.overlapping):
            return _Operand(Buffer(if_words, Layout(b, depth, width, wv, diag), bw), skewed,
                            offset, repeats)
        addr, slots = ifmap_addresses(conv, m, k, dataflow, b, depth, width)
        lay = Layout(b, depth, width, wv, diag, addr >= 0 if conv.ragged else None)
        buf = Buffer(if_words, lay, bw)
        copies = (Copies(addr, slots, conv.slots, lay.positions(), depth, diag,
                         buf.line_words) if conv.overlapping else None)
        return _Operand(buf, skewed, offset, repeats, copies)

    if dataflow == "os":
        lay_f = Layout(blocks(n, cols)[0], k, cols, blocks(n, cols)[1], True)
        return (ifmap(m, k, rows, True, True, 0),
                _Operand(Buffer(f_words, lay_f, bw), True, 0))
    if dataflow == "ws":
        lay_f = Layout(blocks(n, cols)[0], k, cols, blocks(n, cols)[1], False)
        return (ifmap(k, m, rows, True, True, rows),
                _Operand(Buffer(f_words, lay_f, bw), False, 0))
    lay_f = Layout(blocks(k, rows)[0], n, rows, blocks(k, rows)[1], True)
    return (ifmap(m, k, cols, False, False, 0),
            _Operand(Buffer(f_words, lay_f, bw), True, rows))


def _walk(m: int, n: int, k: int, rows: int, cols: int, dataflow: str, ops: tuple[_Operand, ...],
          ) -> Iterator[tuple[int, int, int, int]]:
    """Yield (cycle, ifmap moves, filter moves, ofmap words) fold by fold (column folds outer, row
    folds inner, as every create_*_demand_mat loops); moves in cycle order, then the fold's
    ofmap words with the cycle their output window opens (`_output_span` cycles long)."""
    shape = fold_shape(m, n, k, rows, cols, dataflow)
    cpf = shape.cycles_per_fold
    n_col, n_row = _ceil_div(shape.sc, cols), _ceil_div(shape.sr, rows)
    wins = tuple(Window(op.buf) for op in ops)
    fold = 0
    for c in range(n_col):
        cu = min(cols, shape.sc - c * cols)
        for r in range(n_row):
            ru = min(rows, shape.sr - r * rows)
            base = fold * cpf
            events: list[tuple[int, int, int]] = []
            for which, (op, win) in enumerate(zip(ops, wins, strict=True)):
                if op.skewed:  # OS: ifmap block r, filter block c; WS ifmap / IS filter: r
                    block = c if (dataflow == "os" and which == 1) else r
                    pts = (_diag_points(op, win, block) if op.copies is None
                           else op.copies.block_moves(win, block, op.offset))
                elif op.copies is None:  # WS filter / IS ifmap: rows r*R .. of block c,
                    pts = _row_points(op, win, c, r * rows, r * rows + ru, rows)  # bottom-up
                else:
                    pts = op.copies.row_moves(win, c, r * rows, r * rows + ru, rows)
                events += [(cyc, which, kk) for cyc, kk in pts]
            for cyc, which, kk in sorted(events):
                yield base + cyc, kk if which == 0 else 0, kk if which == 1 else 0, 0
            out = ru * cu if dataflow == "os" else shape.t * cu
            yield base + cpf - _output_span(rows, cols, dataflow, shape.t), 0, 0, out
            fold += 1


def dram_traffic_words(m: int, n: int, k: int, *, rows: int, cols: int, dataflow: str,
                       ifmap_words: int, filter_words: int, dram_words_per_cycle: int = 1,
                       overlapping_windows: bool = False,
                       conv: ConvWindows | None = None) -> tuple[int, int, int]:
    """SCALE-Sim's DRAM (ifmap reads, filter reads, ofmap writes) of one layer, in words."""
    _check_conv(conv, m, k)
    ops = _operands(m, n, k, rows, cols, dataflow, ifmap_words, filter_words,
                    dram_words_per_cycle, overlapping_windows,
                    _im2col(conv, m, k, rows, cols, dataflow))
    moves = [0, 0]
    out = 0
    for _, ki, kf, o in _walk(m, n, k, rows, cols, dataflow, ops):
        moves[0] += ki
        moves[1] += kf
        out += o
    return (ops[0].buf.fill_words + moves[0] * ops[0].buf.move_words,
            ops[1].buf.fill_words + moves[1] * ops[1].buf.move_words, out)


# -- tiles ----------------------------------------------------------------------------------------

def _output_span(rows: int, cols: int, dataflow: str, t: int) -> int:
    """A fold's outputs leave in its last R+C-1 (OS) or T+C-1 (WS, IS) cycles (the skewed
    create_ofmap_demand_mat after its idle prefix)."""
    return rows + cols - 1 if dataflow == "os" else t + cols - 1


def _raw_tiles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str,
               ops: tuple[_Operand, _Operand]) -> list[list[int]]:
    """[compute cycles, ifmap words, filter words, ofmap words] between window moves; the first
    entry holds the fills; compute sums to SCALE-Sim's ``folds * cycles_per_fold - 1``; each
    fold's ofmap words are shared among the tiles its output window overlaps."""
    shape = fold_shape(m, n, k, rows, cols, dataflow)
    end = shape.folds * shape.cycles_per_fold - 1
    span = _output_span(rows, cols, dataflow, shape.t)
    move_i, move_f = ops[0].buf.move_words, ops[1].buf.move_words
    tiles = [[0, ops[0].buf.fill_words, ops[1].buf.fill_words, 0]]
    starts = [0]
    outputs: list[tuple[int, int]] = []
    for cyc, ki, kf, out in _walk(m, n, k, rows, cols, dataflow, ops):
        if out:
            outputs.append((cyc, out))
            continue
        cyc = min(cyc, end)
        if cyc > starts[-1] or len(tiles) == 1:  # a move opens a tile (tile 0: the fills only)
            tiles[-1][0] = cyc - starts[-1]
            tiles.append([0, 0, 0, 0])
            starts.append(cyc)
        tiles[-1][1] += ki * move_i
        tiles[-1][2] += kf * move_f
    tiles[-1][0] = end - starts[-1]
    for a, words in outputs:
        i = bisect_right(starts, a) - 1
        done = 0
        while done < words:  # cumulative floors keep the sum exact
            upto = a + span if i + 1 == len(starts) else min(a + span, starts[i + 1])
            share = words - done if upto >= a + span else words * (upto - a) // span - done
            tiles[i][3] += share
            done += share
            i += 1
    return tiles


def _compress(raw: list[list[int]], max_tiles: int) -> list[tuple[int, int, int, int, int]]:
    """Runs of equal tiles become one entry; past ``max_tiles`` entries, consecutive tiles are
    pooled into groups, each played as ``n - 1`` copies of its floor mean and one tile holding
    the remainder, so every sum stays exact. The first tile (the fills) is kept as it is."""
    body = raw[1:]
    groups = max(1, (max_tiles - 1) // 2)
    c0, i0, f0, o0 = raw[0]
    out = [(c0, i0, f0, o0, 1)]
    if len(_runs(body)) + 1 <= max_tiles:
        return out + _runs(body)
    bounds = [round(i * len(body) / groups) for i in range(groups + 1)]
    pooled: list[list[int]] = []
    for a, b in pairwise(bounds):
        cnt = b - a
        if cnt == 0:
            continue
        tot = [sum(t[j] for t in body[a:b]) for j in range(4)]
        mean = [v // cnt for v in tot]
        pooled += [mean] * (cnt - 1) + [[v - (cnt - 1) * q for v, q in zip(tot, mean,
                                                                        strict=True)]]
    return out + _runs(pooled)


def _runs(tiles: list[list[int]]) -> list[tuple[int, int, int, int, int]]:
    out: list[tuple[int, int, int, int, int]] = []
    for t in tiles:
        if out and list(out[-1][:4]) == t:
            c, i, f, o, r = out[-1]
            out[-1] = (c, i, f, o, r + 1)
        else:
            out.append((t[0], t[1], t[2], t[3], 1))
    return out


def _check_int(name: str, v: object, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name}={v!r} is not allowed; expected an integer >= {low}")


def _im2col(conv: ConvWindows | None, m: int, k: int, rows: int, cols: int,
            dataflow: str) -> ConvWindows | None:
    """``conv`` where its im2col matters (padding or repeated addresses) and its ifmap fetch
    sequence has at most `_MAX_IM2COL_ENTRIES` entries, else None (a GEMM's walk)."""
    if conv is None or not (conv.ragged or conv.overlapping):
        return None
    size = (_ceil_div(k, rows) * rows * m if dataflow == "ws"
            else _ceil_div(m, rows if dataflow == "os" else cols) * k
            * (rows if dataflow == "os" else cols))
    return conv if size <= _MAX_IM2COL_ENTRIES else None


def _check_conv(conv: ConvWindows | None, m: int, k: int) -> None:
    """``conv`` must describe the (M, K) GEMM: M = whole images of Ho x Wo, K = R * S * C."""
    if conv is None:
        return
    if m % (conv.ho * conv.wo):
        raise ValueError(f"conv.ho * conv.wo={conv.ho * conv.wo} is not allowed with m={m}; "
                         "expected a divisor of m (m = batch * ho * wo)")
    if k != conv.r * conv.s * conv.channels:
        raise ValueError(f"conv.r * conv.s * conv.channels={conv.r * conv.s * conv.channels} "
                         f"is not allowed with k={k}; expected k")


def scalesim_tiles(m: int, n: int, k: int, *, rows: int, cols: int, dataflow: str,
                   ifmap_bytes: int, filter_bytes: int, ofmap_bytes: int, word_bytes: int = 1,
                   dram_words_per_cycle: int = 1, overlapping_windows: bool = False,
                   conv: ConvWindows | None = None, max_tiles: int = 48) -> tuple[Tile, ...]:
    """The tile loop SCALE-Sim v3 plays for one (M, N, K) layer on a rows x cols array.

    ``ifmap_bytes``/``filter_bytes``/``ofmap_bytes`` are the three buffers (each double-buffered
    half and half, as SCALE-Sim's); ``word_bytes`` the operand word (SCALE-Sim itself models 1).
    The first tile holds the first fill of both read buffers (SCALE-Sim does it before cycle 0)
    and is never pooled; each later tile starts where a window move fires, and carries the
    moved words. Sums over tiles (times ``repeat``): compute cycles = ``folds * cycles_per_fold
    - 1`` (`dse.sim.systolic.compute_cycles`), ifmap/filter bytes = SCALE-Sim's DRAM reads,
    ofmap bytes = the words the array writes (``M*N`` for OS; ``M*N*ceil(K/R)`` partial sums for
    WS and IS). ``dram_words_per_cycle`` only rounds each request to whole rows of that many words,
    as SCALE-Sim's DRAM counts do. ``conv``: the convolution's window geometry (`ConvWindows`);
    where windows run off the input (SCALE-Sim's rounded-up output size) those ifmap entries are
    padding, and where they overlap an entry hits on any copy of its address in the window, as
    in SCALE-Sim; exact, up to 2**23 ifmap entries (above, the layer runs as a GEMM). Without it,
    ``overlapping_windows`` approximates an IS convolution's repeated addresses (only each
    fold's top row of the stationary ifmap can move the window: too few re-reads). Past
    ``max_tiles`` entries, consecutive tiles are pooled (sums stay exact).
    """
    for name, v, low in (("m", m, 1), ("n", n, 1), ("k", k, 1), ("rows", rows, 1),
                         ("cols", cols, 1), ("word_bytes", word_bytes, 1),
                         ("dram_words_per_cycle", dram_words_per_cycle, 1),
                         ("max_tiles", max_tiles, 3)):
        _check_int(name, v, low)
    if dataflow not in ("os", "ws", "is"):
        raise ValueError(f"dataflow={dataflow!r} is not allowed; expected one of os, ws, is")
    _check_conv(conv, m, k)
    words = {}
    for name, v in (("ifmap_bytes", ifmap_bytes), ("filter_bytes", filter_bytes),
                    ("ofmap_bytes", ofmap_bytes)):
        _check_int(name, v, 2 * word_bytes)
        words[name] = v // word_bytes
    return _tiles(m, n, k, rows, cols, dataflow, words["ifmap_bytes"], words["filter_bytes"],
                  word_bytes, dram_words_per_cycle, overlapping_windows,
                  _im2col(conv, m, k, rows, cols, dataflow), max_tiles)


@lru_cache(maxsize=4096)
def _tiles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str, if_words: int,
           f_words: int, word_bytes: int, bw: int, overlap: bool, conv: ConvWindows | None,
           max_tiles: int) -> tuple[Tile, ...]:
    """`scalesim_tiles` after its checks, cached: a layer shape recurs across design points."""
    ops = _operands(m, n, k, rows, cols, dataflow, if_words, f_words, bw, overlap, conv)
    raw = _raw_tiles(m, n, k, rows, cols, dataflow, ops)
    return tuple(Tile(c, i * word_bytes, f * word_bytes, o * word_bytes, r)
                 for c, i, f, o, r in _compress(raw, max_tiles))
