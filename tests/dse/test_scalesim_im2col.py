"""`dse.sim.scalesim_im2col` and the convolution paths of `dse.sim.scalesim_tiles` against a
brute-force replay of SCALE-Sim v3's read buffers, written entry by entry from its source:

* the ifmap operand matrix as ``operand_matrix.calc_ifmap_elem_addr`` builds it (-1 where a
  window runs off the input), the filter matrix one address per entry;
* each operand's fetch sequence as ``create_*_prefetch_mat`` of systolic_compute_{os,ws,is}
  stacks and reads it (diagonal by diagonal, rows descending, or row by row);
* ``read_buffer.prepare_hashed_buffer``: lines of ``ceil(S/100)`` valid entries (duplicates
  count), ``service_reads``: an address hits if *any* line of the circular active window holds
  it, else the window moves on (``new_prefetch``) until one does.

The replay is slow (a set lookup per demanded entry and line) and shares no code with the
closed forms and vector replays it checks. It is itself checked against SCALE-Sim's recorded
DRAM reads (tests/golden/scalesim_bw).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from dse.sim.scalesim_im2col import ConvWindows, ifmap_addresses
from dse.sim.scalesim_tiles import dram_traffic_words

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "scalesim_bw"
Matrix = list[list[int]]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _im2col(cv: ConvWindows) -> Matrix:
    """M x K ifmap addresses, entry by entry (calc_ifmap_elem_addr, batch 1)."""
    out = []
    for p in range(cv.ho * cv.wo):
        orow, ocol = divmod(p, cv.wo)
        row = []
        for j in range(cv.r * cv.s * cv.channels):
            c_row, rest = divmod(j, cv.s * cv.channels)
            c_col, ch = divmod(rest, cv.channels)
            y, x = orow * cv.stride_h + c_row, ocol * cv.stride_w + c_col
            row.append((y * cv.w + x) * cv.channels + ch if y < cv.h and x < cv.w else -1)
        out.append(row)
    return out


def _cut(mat: Matrix, width: int) -> list[Matrix]:
    """Column blocks of ``width``, the last padded with -1."""
    cols = len(mat[0])
    return [[[row[c] if c < cols else -1 for c in range(b, b + width)] for row in mat]
            for b in range(0, cols, width)]


def _diag(mat: Matrix) -> list[int]:
    rows, cols = len(mat), len(mat[0])
    return [mat[g][d - g] for d in range(rows + cols - 1)
            for g in range(min(d, rows - 1), max(0, d - cols + 1) - 1, -1)]


def _t(mat: Matrix) -> Matrix:
    return [list(r) for r in zip(*mat, strict=True)]


def _fetch_and_demand(ifmap: Matrix, filt: Matrix, rows: int, cols: int,
                      dataflow: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """(ifmap F, filter F, ifmap demand, filter demand); demands fold by fold, column folds
    outer, row folds inner; skewed blocks in diagonal order, stationary rows bottom-up."""
    m, k, n = len(ifmap), len(ifmap[0]), len(filt[0])
    if dataflow == "os":
        ib, fb = _cut(_t(ifmap), rows), _cut(filt, cols)
        f_i, f_f = _diag([r for b in ib for r in b]), _diag([r for b in fb for r in b])
        d_i = [a for _c in range(len(fb)) for b in ib for a in _diag(b)]
        d_f = [a for b in fb for _r in range(len(ib)) for a in _diag(b)]
    elif dataflow == "ws":
        ib, fb = _cut(ifmap, rows), _cut(filt, cols)
        f_i, f_f = _diag([r for b in ib for r in b]), [a for b in fb for r in b for a in r]
        d_i = [a for _c in range(len(fb)) for b in ib for a in _diag(b)]
        d_f = [a for b in fb for r0 in range(0, k, rows)
               for g in range(min(r0 + rows, k) - 1, r0 - 1, -1) for a in b[g]]
    else:
        ib, fb = _cut(_t(ifmap), cols), _cut(_t(filt), rows)
        f_i, f_f = [a for b in ib for r in b for a in r], _diag([r for b in fb for r in b])
        d_i = [a for b in ib for r0 in range(0, k, rows)
               for g in range(min(r0 + rows, k) - 1, r0 - 1, -1) for a in b[g]]
        d_f = [a for _c in range(len(ib)) for b in fb for a in _diag(b)]
    assert len(f_i) >= m * k
    assert len(f_f) >= k * n
    return f_i, f_f, d_i, d_f


def _reads(fetch: list[int], demand: list[int], size: int, bw: int) -> int:
    """DRAM words one read buffer of ``size`` words moves (read_buffer.py, entry by entry)."""
    e = _ceil(size, 100)
    active, pre = _ceil(size, 2), size - _ceil(size, 2)
    lines: list[set[int]] = [set()]
    count = 0
    for a in fetch:
        if a != -1:
            lines[-1].add(a)
            count += 1
            if count == e:
                lines.append(set())
                count = 0
    n = len(lines)
    act = min(_ceil(active, e), n)
    step = min(_ceil(pre, e), n - act)
    start = moves = 0
    for a in demand:
        if a == -1:
            continue
        while not any(a in lines[(start + i) % n] for i in range(act)):
            start = (start + step) % n
            moves += 1
    fill = min(_ceil(active, bw), _ceil(len(fetch), bw)) * bw
    return fill + moves * _ceil(pre, bw) * bw


def _brute(cv: ConvWindows, n: int, rows: int, cols: int, dataflow: str, if_words: int,
           f_words: int, bw: int) -> tuple[int, int]:
    ifmap = _im2col(cv)
    k = len(ifmap[0])
    filt = [[10_000_000 + kk * n + nn for nn in range(n)] for kk in range(k)]
    f_i, f_f, d_i, d_f = _fetch_and_demand(ifmap, filt, rows, cols, dataflow)
    return _reads(f_i, d_i, if_words, bw), _reads(f_f, d_f, f_words, bw)


def _conv(h: int, w: int, r: int, s: int, stride: int, c: int) -> ConvWindows:
    """SCALE-Sim's output size, ceil((H - R + S) / S) per side."""
    return ConvWindows(h, w, r, s, stride, stride, _ceil(h - r + stride, stride),
                       _ceil(w - s + stride, stride), c)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_ifmap_addresses_are_the_im2col_matrix(dataflow: str) -> None:
    cv = _conv(9, 8, 3, 2, 2, 3)  # ragged (9 - 3 = 6 is even, 8 - 2 = 6: not) and overlapping
    ref = _im2col(cv)
    m, k = len(ref), len(ref[0])
    rows = 4
    depth, dim = {"os": (k, m), "ws": (m, k), "is": (k, m)}[dataflow]
    addr, slot = ifmap_addresses(cv, m, k, dataflow, _ceil(dim, rows), depth, rows)
    ref_blocks = _cut(ref if dataflow == "ws" else _t(ref), rows)
    assert addr.tolist() == [r for b in ref_blocks for r in b]
    # an address recurs at most once per copy slot
    pairs = {(a, s) for a, s in zip(addr.ravel().tolist(), slot.ravel().tolist(), strict=True)
             if a >= 0}
    assert len(pairs) == int((addr >= 0).sum())
    assert int(slot.max()) < cv.slots


CASES = [  # (h, w, r, s, stride, c, n, rows, cols, ifmap words, filter words, bw)
    (6, 6, 3, 3, 1, 2, 5, 4, 4, 64, 64, 2),  # overlapping, not ragged
    (7, 7, 3, 3, 2, 2, 6, 4, 4, 48, 96, 3),  # overlapping, not ragged
    (8, 8, 3, 3, 2, 2, 6, 4, 4, 48, 64, 2),  # overlapping and ragged
    (9, 7, 1, 1, 2, 3, 4, 4, 8, 40, 64, 1),  # ragged 1x1
    (8, 9, 2, 3, 3, 2, 3, 8, 4, 64, 40, 4),  # ragged, rectangular filter
    (7, 7, 3, 3, 1, 1, 9, 4, 4, 30, 40, 1),  # tiny buffers: many trips around the ring
]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("case", CASES)
def test_dram_reads_match_an_entry_by_entry_replay(case: tuple[int, ...], dataflow: str) -> None:
    h, w, r, s, st, c, n, rows, cols, iw, fw, bw = case
    cv = _conv(h, w, r, s, st, c)
    m, k = cv.ho * cv.wo, r * s * c
    ours = dram_traffic_words(m, n, k, rows=rows, cols=cols, dataflow=dataflow, ifmap_words=iw,
                              filter_words=fw, dram_words_per_cycle=bw, conv=cv)
    assert ours[:2] == _brute(cv, n, rows, cols, dataflow, iw, fw, bw)


def test_random_convolutions_match_the_replay() -> None:
    rng = random.Random(9)
    for _ in range(12):
        r, s, st = rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 3)
        h, w = rng.randint(r + 1, r + 6), rng.randint(s + 1, s + 6)
        cv = _conv(h, w, r, s, st, rng.randint(1, 3))
        n, rows, cols = rng.randint(1, 9), rng.choice((2, 4)), rng.choice((2, 4, 8))
        iw, fw, bw = rng.randint(8, 120), rng.randint(8, 120), rng.randint(1, 4)
        m, k = cv.ho * cv.wo, r * s * cv.channels
        for df in ("os", "ws", "is"):
            ours = dram_traffic_words(m, n, k, rows=rows, cols=cols, dataflow=df,
                                      ifmap_words=iw, filter_words=fw,
                                      dram_words_per_cycle=bw, conv=cv)
            assert ours[:2] == _brute(cv, n, rows, cols, df, iw, fw, bw), (cv, n, rows, cols,
                                                                          df, iw, fw, bw)


def test_the_replay_reproduces_scalesims_recorded_reads() -> None:
    # the oracle itself against SCALE-Sim: the small ragged and overlapping recorded layers
    with (GOLDEN / "ragged.csv").open() as f:
        rows = [row for row in csv.DictReader(f) if row["layer"] != "r1x1s2"]
    for row in rows:
        g = {c: int(row[c]) for c in ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "stride",
                                      "channels", "num_filt", "rows", "cols", "ifmap_kib",
                                      "filter_kib", "words_per_cycle")}
        cv = _conv(g["ifmap_h"], g["ifmap_w"], g["filt_h"], g["filt_w"], g["stride"],
                   g["channels"])
        got = _brute(cv, g["num_filt"], g["rows"], g["cols"], row["dataflow"],
                     1024 * g["ifmap_kib"], 1024 * g["filter_kib"], g["words_per_cycle"])
        assert got == (int(row["dram_ifmap_reads"]), int(row["dram_filter_reads"])), row["layer"]


def test_conv_geometry_must_match_the_gemm() -> None:
    cv = _conv(8, 8, 3, 3, 1, 2)
    kw = {"rows": 4, "cols": 4, "dataflow": "os", "ifmap_words": 64, "filter_words": 64}
    with pytest.raises(ValueError, match=r"conv\.ho \* conv\.wo=36"):
        dram_traffic_words(35, 4, 18, conv=cv, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"conv\.r \* conv\.s \* conv\.channels=18"):
        dram_traffic_words(36, 4, 17, conv=cv, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ConvWindows\.stride_h=0"):
        ConvWindows(8, 8, 3, 3, 0, 1, 6, 6, 2)


def test_a_huge_convolution_runs_as_a_gemm() -> None:
    # above 2**23 ifmap fetch entries (~40 bytes each in the replay) the geometry is dropped
    from dse.sim.scalesim_tiles import _im2col

    big = ConvWindows(200, 200, 3, 3, 1, 1, 198, 198, 24)  # 39204 x 216: 8.47 M entries
    small = ConvWindows(200, 200, 3, 3, 1, 1, 198, 198, 16)  # 39204 x 144: 5.65 M
    for df in ("os", "ws", "is"):
        assert _im2col(big, 198 * 198, 216, 8, 8, df) is None
        assert _im2col(small, 198 * 198, 144, 8, 8, df) is small
    flat = ConvWindows(8, 8, 1, 1, 1, 1, 8, 8, 4)  # neither ragged nor overlapping: a GEMM
    assert _im2col(flat, 64, 4, 8, 8, "os") is None
