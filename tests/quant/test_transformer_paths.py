"""Quantized torch Transformer layers run their quantizers in every mode.

In eval mode under ``torch.no_grad()`` torch runs ``nn.TransformerEncoderLayer`` as one fused
kernel reading the float weights (and ``nn.TransformerEncoder`` packs padded batches into nested
tensors for it). Oracle: the same quantized model with autograd on, which always takes the
Python path."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from quant import quantize


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                enable_nested_tensor=True)
    return nn.Sequential(nn.Linear(8, 16), enc, nn.Linear(16, 4)).eval()


@pytest.mark.parametrize("recipe", ["lsq", "pact_sawb"])
def test_quantized_encoder_runs_its_quantizers_under_no_grad(recipe: str) -> None:
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the attention weights stay full precision
        q = quantize(model, recipe, 2, 2).eval()
    x = torch.randn(3, 5, 8)
    with_grad = q(x)
    with torch.no_grad():
        torch.testing.assert_close(q(x), with_grad)
        assert not torch.allclose(model(x), with_grad, atol=1e-3)  # the quantizers did act


def test_padded_batches_are_not_packed_into_nested_tensors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize(_model(), "lsq", 2, 2).eval()
    h = q[0](torch.randn(3, 5, 8))
    mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]])
    with_grad = q[1](h, src_key_padding_mask=mask)
    with torch.no_grad():
        out = q[1](h, src_key_padding_mask=mask)
    assert not out.is_nested
    torch.testing.assert_close(out, with_grad)
