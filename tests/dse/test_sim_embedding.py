"""An embedding lookup reads the table rows it gathers from DRAM: a memory-only op with weights
is charged the rows it gathers (a plain lookup: its output; an EmbeddingBag: every id of every
bag), at most the whole table, as weight traffic, beside its token-id input and its output.
Before, the rows cost nothing."""

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


class BagModel(nn.Module):
    """A recommendation model's sparse side: each sample's ids pooled by an EmbeddingBag."""

    def __init__(self, vocab: int, dim: int, mode: str = "sum", weighted: bool = False) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(vocab, dim, mode=mode)
        self.fc = nn.Linear(dim, 3)
        self.weighted = weighted

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        w = torch.ones_like(ids, dtype=torch.float) if self.weighted else None
        return self.fc(self.emb(ids, per_sample_weights=w))


@pytest.mark.parametrize(("mode", "weighted"), [("sum", False), ("mean", False), ("max", False),
                                                ("sum", True)])
def test_a_bag_gathers_every_id_and_reduces_on_the_vector_unit(mode: str, weighted: bool) -> None:
    # batch 2 bags of 12 ids, 16-wide rows: 2 x 12 rows gathered, 2 x 16 outputs
    wl = extract(BagModel(1000, 16, mode, weighted), (12,), batch=2, default_bits=8)
    emb = wl["emb"]
    assert (emb.op, emb.macs, emb.output_elems) == ("resize", 0, 2 * 16)
    assert emb.meta["gathered_elems"] == 2 * 12 * 16
    assert emb.vector_ops == 2 * 12 * 16 * (2 if weighted else 1)  # adds (and weight products)


@pytest.mark.parametrize(("vocab", "rows"), [(1000, 2 * 12), (5, 5)])
def test_a_bag_reads_every_gathered_row_not_its_pooled_output(vocab: int, rows: int) -> None:
    """24 rows of 16 bytes for 2 pooled outputs (the plain-lookup rule, the output's bytes,
    would charge 2 rows), or the whole table when it is smaller."""
    wl = extract(BagModel(vocab, 16), (12,), batch=2, default_bits=8)
    acc = Accelerator(cores=2, rows=8, cols=8, mac_bits=(8, 8), sram_kib=256.0, dram_gbps=8.0)
    res = simulate(wl, acc, batch=2, prefetch=False)
    assert res.dram_bytes_by_operand["weights"] == rows * 16 + 16 * 3


def test_functional_bag_with_offsets_and_weights() -> None:
    """F.embedding_bag on a flat id list cut into bags by offsets: every id is gathered."""
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.randn(50, 8))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            flat = ids.flatten()
            offsets = torch.arange(0, flat.numel(), 4)
            return torch.nn.functional.embedding_bag(
                flat, self.table, offsets, mode="sum",
                per_sample_weights=torch.ones_like(flat, dtype=torch.float))

    wl = extract(Flat(), (12,), batch=2)
    bag = next(la for la in wl if la.op == "resize" and la.weight_elems)
    assert bag.meta["gathered_elems"] == 24 * 8
    assert bag.vector_ops == 2 * 24 * 8
    assert bag.output_elems == 6 * 8
