"""An embedding lookup reads the table rows it gathers from DRAM: a memory-only op with weights
is charged its output's bytes (at most the whole table) as weight traffic, beside its token-id
input and its output. Before, the rows cost nothing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arch.spec import Accelerator
from dse import simulate
from workloads import extract


class Tagger(nn.Module):
    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.fc = nn.Linear(dim, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(tokens))


@pytest.mark.parametrize(("vocab", "tokens", "rows"), [(1000, 9, 2 * 9), (5, 40, 5)])
def test_a_lookup_reads_the_rows_it_gathers_at_most_the_table(vocab: int, tokens: int,
                                                              rows: int) -> None:
    # batch 2 of `tokens` ids, 16-wide rows at 8 bits: 2 x tokens rows of 16 bytes, or the
    # whole table (5 rows) when the lookups outnumber it
    wl = extract(Tagger(vocab, 16), (tokens,), batch=2, default_bits=8)
    acc = Accelerator(cores=2, rows=8, cols=8, mac_bits=(8, 8), sram_kib=256.0, dram_gbps=8.0)
    res = simulate(wl, acc, batch=2, prefetch=False)
    # ids in (one byte each), the rows and fc's 16 x 3 weights, fc's 3 outputs per token out;
    # the gathered rows stay on chip for fc
    assert res.dram_bytes_by_operand == {"weights": rows * 16 + 16 * 3, "inputs": 2 * tokens,
                                         "outputs": 2 * tokens * 3}
