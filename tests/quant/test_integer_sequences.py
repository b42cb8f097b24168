"""to_integer on sequence models: a Linear applied to (N, L, F) runs row by row.

Oracle: the same integer model on the flattened (N*L, F) input - a Linear treats every row on
its own, so the outputs must be identical integers, reshaped."""

from __future__ import annotations

import warnings

import torch
from torch import nn

import quant


def test_linear_on_sequences_equals_the_flattened_rows() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quant.quantize(model, "llsqf", 4, 4).eval()
    x = torch.randn(7, 5, 6)
    quant.calibrate(q, x)  # activation scales from data, as before any export
    im = quant.to_integer(q)
    seq = im(x)
    assert seq.shape == (7, 5, 4)
    assert torch.equal(seq, im(x.reshape(35, 6)).reshape(7, 5, 4))
    ref = q(x)
    assert float((seq - ref).abs().max()) < 0.15 * float(ref.abs().max())  # as the 2-D tests
