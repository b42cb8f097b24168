"""`dse.sim.scalesim_tiles` against SCALE-Sim v3 under limited bandwidth.

Oracles: SCALE-Sim itself (live, when the test extra runs here; skipped with the reason otherwise)
and its recorded runs in tests/golden/scalesim_bw/ (always; regenerate them with
benchmarks/scalesim_reference.py, see the README there). The tiles are played by `replay_cycles`,
a serial loop with SCALE-Sim's bandwidth semantics (tests/golden/scalesim_bw/README.md and
/work/notes -> docs/simulator.md): every operand its own DRAM port, each port's transfers chained
back to back, a tile starts once its transfers are in and the previous tile is done, ofmap words
drain behind the array at most one ofmap buffer behind.

Targets (issue 9): every layer within 15 % and each set's total within 5 % of SCALE-Sim's
"Total Cycles (incl. prefetch)"; DRAM reads per operand equal. The `tuned` and `ragged` sets are
what the generator was built against; `heldout`, `heldout2`, `heldout3` and `mobilenet_v1` were
recorded afterwards (see tests/golden/scalesim_bw/README.md for what each one prompted).
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
from scalesim_peer import ConvLayer, GemmLayer, run_scalesim, scalesim_unusable_reason

from dse.sim.scalesim_fetch import Layout
from dse.sim.scalesim_tiles import ConvWindows, Tile, dram_traffic_words, scalesim_tiles
from dse.sim.systolic import compute_cycles

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "scalesim_bw"
SETS = ("tuned", "ragged", "heldout", "heldout2", "heldout3", "mobilenet_v1")


class OfmapPort:
    """SCALE-Sim's ofmap buffer and port (write_buffer.service_writes): written words take slots;
    once more than half the buffer (``D`` words) is held and the previous burst is over, ``D``
    words drain in ``ceil(D/bw)`` cycles, their slots freed as the burst starts; the array waits
    only when no slot is free. A tile writes its words evenly over its compute cycles."""

    def __init__(self, buffer_words: int, bw: float) -> None:
        self.cap, self.half, self.bw = buffer_words, buffer_words - math.ceil(buffer_words / 2), bw
        self.held = 0.0
        self.burst_end = 0.0  # no burst yet

    def write(self, start: float, compute_cycles: int, words: int) -> float:
        """Write ``words`` from cycle ``start``; returns the cycles the array waited."""
        rate = words / compute_cycles if compute_cycles else math.inf
        t, left, waited = start, float(words), 0.0
        while left > 0:
            need = self.half + 1 - self.held  # words until a burst may start
            if need > left:
                self.held += left
                break
            t, self.held, left = t + need / rate, self.held + need, left - need
            if t < self.burst_end:  # the last burst still runs: fill free slots meanwhile
                room = self.cap - self.held
                w = min(left, (self.burst_end - t) * rate)
                if w > room:  # full: the array waits for the burst
                    waited += (self.burst_end - t) - room / rate
                    w = room
                self.held, left, t = self.held + w, left - w, self.burst_end
            self.burst_end = t + math.ceil(self.half / self.bw)
            self.held -= self.half
        return waited

    def tail(self, clock: int) -> int:
        """Cycles after the array's last one until the last word is in DRAM (empty_all_buffers
        drains what is held from the last cycle on, beside a burst still running)."""
        return max(math.ceil(self.burst_end) - clock, math.ceil(self.held / self.bw), 0)


def replay_cycles(tiles: tuple[Tile, ...], *, ifmap_bw: float, filter_bw: float,
                  ofmap_bw: float, ofmap_buffer_bytes: int,
                  word_bytes: int = 1) -> tuple[int, int, int]:
    """(total cycles, total incl. prefetch, stall cycles) of a tile loop, SCALE-Sim's way.

    Tile 0's reads happen before cycle 0 (SCALE-Sim's first fill); later reads are chained per
    port, never waiting for buffer space; a tile starts when its reads are in and the previous
    tile is done; ofmap words go through `OfmapPort`; the final drain and the first fill count
    only in "incl. prefetch".
    """
    fill = max(math.ceil(tiles[0].ifmap_bytes / word_bytes / ifmap_bw),
               math.ceil(tiles[0].filter_bytes / word_bytes / filter_bw))
    ofmap = OfmapPort(ofmap_buffer_bytes // word_bytes, ofmap_bw)
    if_done = f_done = 0.0  # when each read port has delivered everything asked so far
    clock = stall = 0
    first = True
    for tile in tiles:
        for _ in range(tile.repeat):
            start = clock
            if not first and tile.ifmap_bytes:
                if_done += tile.ifmap_bytes / word_bytes / ifmap_bw
                start = max(start, math.ceil(if_done))
            if not first and tile.filter_bytes:
                f_done += tile.filter_bytes / word_bytes / filter_bw
                start = max(start, math.ceil(f_done))
            first = False
            waited = ofmap.write(start, tile.compute_cycles, tile.ofmap_bytes // word_bytes)
            end = start + tile.compute_cycles + math.ceil(waited)
            stall += end - clock - tile.compute_cycles
            clock = end
    return clock, fill + clock + ofmap.tail(clock), stall


def replay_scalesim_stalls(tiles: tuple[Tile, ...], *, bw: int, move_words: tuple[int, int],
                           ofmap_buffer_bytes: int) -> int:
    """Total cycles incl. prefetch with SCALE-Sim's own stall arithmetic (unpooled tiles, one-byte
    words): each window move is ``ceil(P/bw)`` request rows plus 1 cycle of port latency chained
    after the previous move; per move ``pot = arrival - (cycle + offset)``, ``offset += pot`` and,
    if ``pot > 0``, ``offset += pot`` once more (read_buffer.service_reads counts a positive wait
    twice); the array waits ``max(offset - 1)`` over the two read buffers. Ofmap as in
    `replay_cycles`."""
    fill = max(-(-tiles[0].ifmap_bytes // bw), -(-tiles[0].filter_bytes // bw))
    rows_per_move = [-(-w // bw) for w in move_words]
    arrival = [-1, -1]  # last_prefetch_cycle of each read buffer
    ofmap = OfmapPort(ofmap_buffer_bytes, bw)
    clock = 0
    for i, tile in enumerate(tiles):
        for _ in range(tile.repeat):
            wait = 0
            for op, moved in enumerate((tile.ifmap_bytes, tile.filter_bytes)):
                if i == 0 or not moved:  # tile 0 holds the first fills, before cycle 0
                    continue
                assert moved % move_words[op] == 0
                offset = 1
                for _ in range(moved // move_words[op]):
                    arrival[op] += rows_per_move[op] + 1
                    pot = arrival[op] - (clock + offset)
                    offset += pot + max(pot, 0)
                wait = max(wait, offset - 1)
            start = clock + wait
            clock = start + tile.compute_cycles + math.ceil(
                ofmap.write(start, tile.compute_cycles, tile.ofmap_bytes))
    return fill + clock + ofmap.tail(clock)


def _rows(name: str) -> list[dict[str, str]]:
    path = GOLDEN / f"{name}.csv"
    assert path.exists(), f"{path} is missing; benchmarks/scalesim_reference.py --set {name}"
    with path.open() as f:
        return list(csv.DictReader(f))


def _ours(row: dict[str, str]) -> dict[str, int]:
    """Our tiles for one golden row, played by `replay_cycles`."""
    m, n, k = int(row["gemm_m"]), int(row["gemm_n"]), int(row["gemm_k"])
    df, bw = row["dataflow"], int(row["words_per_cycle"])
    kib = {op: int(row[f"{op}_kib"]) * 1024 for op in ("ifmap", "filter", "ofmap")}
    overlap = row["kind"] == "conv" and int(row["filt_h"]) > int(row["stride"])
    tiles = scalesim_tiles(m, n, k, rows=int(row["rows"]), cols=int(row["cols"]), dataflow=df,
                           ifmap_bytes=kib["ifmap"], filter_bytes=kib["filter"],
                           ofmap_bytes=kib["ofmap"], dram_words_per_cycle=bw,
                           overlapping_windows=overlap, conv=_windows(row))
    total, incl, stall = replay_cycles(tiles, ifmap_bw=bw, filter_bw=bw, ofmap_bw=bw,
                                       ofmap_buffer_bytes=kib["ofmap"])
    return {"total_cycles": total, "total_cycles_incl_prefetch": incl, "stall_cycles": stall,
            "dram_ifmap_reads": sum(t.ifmap_bytes * t.repeat for t in tiles),
            "dram_filter_reads": sum(t.filter_bytes * t.repeat for t in tiles),
            "dram_ofmap_writes": sum(t.ofmap_bytes * t.repeat for t in tiles)}


def _windows(row: dict[str, str]) -> ConvWindows | None:
    """A conv row's window geometry, outputs sized as SCALE-Sim sizes them (ceil((H - R + S) /
    S)): where the stride does not divide H - R, the last output row/column reads off the input
    and its ifmap entries are padding (the `ragged` set)."""
    if row.get("kind") != "conv":
        return None
    h, w, r, st = (int(row[c]) for c in ("ifmap_h", "ifmap_w", "filt_h", "stride"))
    return ConvWindows(h, w, r, int(row["filt_w"]), st, st, -(-(h - r + st) // st),
                       -(-(w - int(row["filt_w"]) + st) // st), int(row["channels"]))


# -- the tiles keep SCALE-Sim's sums --------------------------------------------------------------

SHAPES = [(100, 130, 90, 8, 16), (49, 1024, 1024, 8, 64), (12544, 32, 27, 8, 64),
          (37, 77, 53, 16, 4), (1, 1000, 1024, 8, 64)]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize(("m", "n", "k", "rows", "cols"), SHAPES)
def test_tiles_sum_to_compute_cycles_and_dram_traffic(m: int, n: int, k: int, rows: int,
                                                      cols: int, dataflow: str) -> None:
    kw = {"rows": rows, "cols": cols, "dataflow": dataflow}
    tiles = scalesim_tiles(m, n, k, ifmap_bytes=2048, filter_bytes=4096, ofmap_bytes=1024,
                           dram_words_per_cycle=3, max_tiles=20, **kw)  # type: ignore[arg-type]
    assert len(tiles) <= 20
    assert sum(t.compute_cycles * t.repeat for t in tiles) == compute_cycles(m, n, k, rows, cols,
                                                                             dataflow)
    reads_i, reads_f, writes = dram_traffic_words(m, n, k, ifmap_words=2048, filter_words=4096,
                                                  dram_words_per_cycle=3, **kw)  # type: ignore[arg-type]
    assert sum(t.ifmap_bytes * t.repeat for t in tiles) == reads_i
    assert sum(t.filter_bytes * t.repeat for t in tiles) == reads_f
    assert sum(t.ofmap_bytes * t.repeat for t in tiles) == writes
    # the first tile is the two first fills, exactly: min(ceil(A/bw), ceil(|F|/bw)) * bw words
    # (A = half the buffer, |F| the operand padded to whole folds), and nothing else
    def pad(a: int, b: int) -> int:
        return -(-a // b) * b

    size_f = {"os": (pad(m, rows) * k, pad(n, cols) * k),
              "ws": (pad(k, rows) * m, pad(n, cols) * k),
              "is": (pad(m, cols) * k, pad(k, rows) * n)}[dataflow]
    assert tiles[0].repeat == 1
    assert tiles[0].ifmap_bytes == min(pad(1024, 3), pad(size_f[0], 3))
    assert tiles[0].filter_bytes == min(pad(2048, 3), pad(size_f[1], 3))


@pytest.mark.parametrize("diag", [True, False])
def test_fetch_positions_match_an_explicit_roll_out(diag: bool) -> None:
    # the closed forms of Layout against the matrices built entry by entry, as
    # create_*_prefetch_mat does: blocks stacked, the last block's columns from valid_w padded,
    # then read diagonal by diagonal (rows descending within one) or row by row
    for blocks, depth, width, valid_w in itertools.product((1, 3), (1, 4, 7), (1, 5, 8),
                                                           (1, 3, 5)):
        if valid_w > width:
            continue
        lay = Layout(blocks, depth, width, valid_w, diag)
        rows = blocks * depth
        if diag:
            order = [(g, d - g) for d in range(rows + width)
                     for g in range(min(d, rows - 1), max(0, d - width + 1) - 1, -1)]
        else:
            order = [(g, w) for g in range(rows) for w in range(width)]
        valid = 0
        for pos, (g, w) in enumerate(order):
            assert lay.position(g, w) == pos
            if g < rows - depth or w < valid_w:
                assert lay.valid_index(g, w) == valid, (lay, g, w)
                valid += 1
        assert (valid, len(order)) == (lay.valid, lay.size)


def test_word_bytes_scale_the_buffers_and_the_bytes() -> None:
    one = scalesim_tiles(64, 64, 64, rows=8, cols=8, dataflow="os", ifmap_bytes=1024,
                         filter_bytes=1024, ofmap_bytes=1024)
    two = scalesim_tiles(64, 64, 64, rows=8, cols=8, dataflow="os", ifmap_bytes=2048,
                         filter_bytes=2048, ofmap_bytes=2048, word_bytes=2)
    assert [(t.compute_cycles, 2 * t.ifmap_bytes, 2 * t.filter_bytes, 2 * t.ofmap_bytes,
             t.repeat) for t in one] == [
        (t.compute_cycles, t.ifmap_bytes, t.filter_bytes, t.ofmap_bytes, t.repeat) for t in two]


def test_os_filter_reuse_refetches_the_whole_filter_by_hand() -> None:
    # OS, 8x8 array, M=16 (2 row folds), N=8 (1 column fold), K=256: the filter is one 256x8
    # block of 2048 words, used twice. A 1 KiB buffer: A = P = 512 words, lines of e = 11 words,
    # 2048 // 11 + 1 = 187 lines, a window of 47 lines moving 47 at a time. First use: the walk
    # from line 0 to line 186 needs ceil((186 - 47 + 1) / 47) = 3 moves; the window is then lines
    # 141..186 and 0. Second use starts at line 0 (inside, the window's last line): 1 line of
    # room, ceil((186 - 1 + 1) / 47) = 4 moves. 7 moves of 512 words + the 512-word first fill:
    # 4096 words, what SCALE-Sim 3.0.0 reports for this layer.
    kw = {"rows": 8, "cols": 8, "dataflow": "os", "ifmap_words": 1024}
    assert dram_traffic_words(16, 8, 256, filter_words=1024, **kw)[1] == 512 + 7 * 512  # type: ignore[arg-type]
    # a 4 KiB buffer holds the whole block in its active half: fetched once (SCALE-Sim: 2048)
    assert dram_traffic_words(16, 8, 256, filter_words=4096, **kw)[1] == 2048  # type: ignore[arg-type]


def test_bad_input_names_the_field() -> None:
    kw = {"rows": 8, "cols": 8, "ifmap_bytes": 1024, "filter_bytes": 1024, "ofmap_bytes": 1024}
    with pytest.raises(ValueError, match="dataflow='xs'"):
        scalesim_tiles(8, 8, 8, dataflow="xs", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ifmap_bytes=1 "):
        scalesim_tiles(8, 8, 8, dataflow="os", **{**kw, "ifmap_bytes": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="m=0 "):
        scalesim_tiles(0, 8, 8, dataflow="os", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Tile\.repeat=0"):
        Tile(1, 0, 0, 0, repeat=0)


# -- against SCALE-Sim's recorded runs (always on) -----------------------------------------------

@pytest.mark.parametrize("name", SETS)
def test_dram_traffic_matches_scalesim(name: str) -> None:
    for row in _rows(name):
        ours = _ours(row)
        where = f"{name} {row['layer']}/{row['dataflow']}"
        assert ours["dram_ifmap_reads"] == int(row["dram_ifmap_reads"]), where
        assert ours["dram_filter_reads"] == int(row["dram_filter_reads"]), where
        # SCALE-Sim counts some partial drain rows as full rows of `bw` words (write_buffer.
        # empty_drain_buf subtracts padding only in a drain's last row): up to ~1 % more
        assert ours["dram_ofmap_writes"] == pytest.approx(int(row["dram_ofmap_writes"]),
                                                          rel=0.02, abs=40), where


@pytest.mark.parametrize("name", SETS)
def test_cycles_within_issue_targets(name: str) -> None:
    rows = _rows(name)
    ours_total = ref_total = 0
    for row in rows:
        ours = _ours(row)
        ref = int(row["total_cycles_incl_prefetch"])
        where = f"{name} {row['layer']}/{row['dataflow']}: ours {ours} vs SCALE-Sim {ref}"
        assert abs(ours["total_cycles_incl_prefetch"] - ref) <= 0.15 * ref, where
        assert abs(ours["total_cycles"] - int(row["total_cycles"])) <= 0.15 * ref, where
        # stalls: within 15 % of the layer's cycles (a relative error on a few stall cycles of a
        # compute-bound layer says nothing)
        assert abs(ours["stall_cycles"] - int(row["stall_cycles"])) <= 0.15 * ref, where
        ours_total += ours["total_cycles_incl_prefetch"]
        ref_total += ref
    assert abs(ours_total - ref_total) <= 0.05 * ref_total, (name, ours_total, ref_total)


@pytest.mark.parametrize("name", SETS)
def test_with_scalesims_stall_arithmetic_every_layer_within_4_percent(name: str) -> None:
    # the tiles' remaining gap to SCALE-Sim is its stall arithmetic, not the tiles: played with
    # it (double-counted waits, 1 cycle per move), every layer lands within 3.7 % (4 % asserted;
    # the worst: -3.7 %, a ragged 1x1 stride-3 IS layer, and -3.0 %, a 2 words/cycle WS layer
    # whose ofmap port is the bottleneck)
    for row in _rows(name):
        bw = int(row["words_per_cycle"])
        size = {op: int(row[f"{op}_kib"]) * 1024 for op in ("ifmap", "filter", "ofmap")}
        tiles = scalesim_tiles(int(row["gemm_m"]), int(row["gemm_n"]), int(row["gemm_k"]),
                               rows=int(row["rows"]), cols=int(row["cols"]),
                               dataflow=row["dataflow"], ifmap_bytes=size["ifmap"],
                               filter_bytes=size["filter"], ofmap_bytes=size["ofmap"],
                               dram_words_per_cycle=bw, conv=_windows(row), max_tiles=10**9)
        # one move = ceil(P / bw) rows of bw words, P = S - ceil(S / 2)
        moves = tuple(-(-(size[op] - -(-size[op] // 2)) // bw) * bw
                      for op in ("ifmap", "filter"))
        ours = replay_scalesim_stalls(tiles, bw=bw, move_words=moves,  # type: ignore[arg-type]
                                      ofmap_buffer_bytes=size["ofmap"])
        ref = int(row["total_cycles_incl_prefetch"])
        assert abs(ours - ref) <= 0.04 * ref, (name, row["layer"], row["dataflow"], ours, ref)


# -- against SCALE-Sim itself (skipped where the test extra does not run) ------------------------

LIVE = [(GemmLayer("live_g", 40, 48, 36), "os", 8, 8, 1, 1, 1, 3),
        (GemmLayer("live_g", 40, 48, 36), "ws", 8, 8, 1, 1, 1, 3),
        (GemmLayer("live_g", 40, 48, 36), "is", 8, 8, 1, 1, 1, 3),
        (ConvLayer("live_c", 9, 9, 3, 3, 4, 12, 2), "os", 4, 8, 1, 1, 1, 2),
        # ragged (12 - 3 is odd: padding entries) and overlapping (repeated addresses), IS:
        # SCALE-Sim reads its ifmap 4.5x (8,704 words for a 1,944-word im2col matrix)
        (ConvLayer("live_r", 12, 12, 3, 3, 6, 12, 2), "is", 4, 8, 1, 1, 1, 2)]


@pytest.mark.parametrize(("layer", "dataflow", "rows", "cols", "ik", "fk", "ok", "bw"), LIVE)
def test_live_scalesim(layer: ConvLayer | GemmLayer, dataflow: str, rows: int, cols: int,
                       ik: int, fk: int, ok: int, bw: int) -> None:
    reason = scalesim_unusable_reason()
    if reason:
        pytest.skip(reason)
    ref = run_scalesim([layer], rows=rows, cols=cols, dataflow=dataflow, ifmap_kib=ik,  # type: ignore[list-item]
                       filter_kib=fk, ofmap_kib=ok, words_per_cycle=bw)[0]
    m, n, k = layer.gemm_mnk
    row = {"gemm_m": str(m), "gemm_n": str(n), "gemm_k": str(k), "dataflow": dataflow,
           "words_per_cycle": str(bw), "ifmap_kib": str(ik), "filter_kib": str(fk),
           "ofmap_kib": str(ok), "rows": str(rows), "cols": str(cols),
           "kind": "conv" if isinstance(layer, ConvLayer) else "gemm",
           **{f: str(getattr(layer, f, 1)) for f in ("ifmap_h", "ifmap_w", "filt_h", "filt_w",
                                                     "channels", "stride")}}
    ours = _ours(row)
    assert ref["compute_cycles"] == compute_cycles(m, n, k, rows, cols, dataflow)
    assert ours["dram_ifmap_reads"] == ref["dram_ifmap_reads"]
    assert ours["dram_filter_reads"] == ref["dram_filter_reads"]
    ref_incl = ref["total_cycles_incl_prefetch"]
    assert abs(ours["total_cycles_incl_prefetch"] - ref_incl) <= 0.15 * ref_incl, (ours, ref)
