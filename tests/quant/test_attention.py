"""QuantMultiheadAttention: the four projections of attention, each with its own quantizers.

Oracles: torch's nn.MultiheadAttention (no quantizers: identical outputs and attention weights
over its options), scaled dot-product attention written out from Vaswani et al. (2017) Eq. 1
and Sec. 3.2.2 (quantized projections), and the float model's workload graph."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import quant
import workloads
from quant.attention import PROJECTIONS, QuantMultiheadAttention, projection_weight
from quant.methods.lsq import LSQActQuantizer, LSQWeightQuantizer

CONFIGS = {
    "batch_first": dict(batch_first=True),
    "seq_first": dict(),
    "kdim_vdim": dict(kdim=6, vdim=5, batch_first=True),
    "bias_kv_zero_attn": dict(add_bias_kv=True, add_zero_attn=True),
    "no_bias": dict(bias=False, batch_first=True),
}


def _inputs(cfg: dict[str, object], n: int = 3, lq: int = 4, s: int = 6,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bf = bool(cfg.get("batch_first", False))

    def make(length: int, features: int) -> torch.Tensor:
        return torch.randn(n, length, features) if bf else torch.randn(length, n, features)

    return make(lq, 8), make(s, int(cfg.get("kdim", 8))), make(s, int(cfg.get("vdim", 8)))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_without_quantizers_it_is_torchs_attention(name: str) -> None:
    torch.manual_seed(0)
    cfg = CONFIGS[name]
    mha = nn.MultiheadAttention(8, 2, **cfg).eval()  # type: ignore[arg-type]
    q = QuantMultiheadAttention.from_float(mha)
    query, key, value = _inputs(cfg)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[1, -2:] = True
    causal = torch.triu(torch.ones(4, 6, dtype=torch.bool), 1)
    for kw in (dict(need_weights=True), dict(need_weights=False, key_padding_mask=pad),
               dict(attn_mask=causal, average_attn_weights=False)):
        want, got = mha(query, key, value, **kw), q(query, key, value, **kw)
        torch.testing.assert_close(got[0], want[0])
        if want[1] is None:
            assert got[1] is None
        else:
            torch.testing.assert_close(got[1], want[1])


def test_unbatched_input_and_shared_parameters() -> None:
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 4).eval()
    q = QuantMultiheadAttention.from_float(mha)
    x = torch.randn(5, 8)
    torch.testing.assert_close(q(x, x, x)[0], mha(x, x, x)[0])
    assert q.in_proj_weight is mha.in_proj_weight
    assert q.out_proj is mha.out_proj
    assert set(mha.state_dict()) <= set(q.state_dict())  # float checkpoints still load


def _reference(q: QuantMultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Self-attention of (N, L, E) ``x`` written out (Vaswani et al. Eq. 1, Sec. 3.2.2) with each
    projection's quantized weight and quantized input."""
    def proj(part: str, inp: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        iq = getattr(q.input_quantizers, part, None)
        inp = iq(inp) if iq is not None else inp
        return F.linear(inp, q.quantized_weight(part), bias)

    e, h = q.embed_dim, q.num_heads
    d = e // h
    b = q.in_proj_bias
    assert b is not None
    qs, ks, vs = (proj(p, x, b[i * e:(i + 1) * e]) for i, p in enumerate(PROJECTIONS[:3]))
    n, length, _ = x.shape

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n, length, h, d).transpose(1, 2)

    scores = heads(qs) @ heads(ks).transpose(-1, -2) / math.sqrt(d)
    context = (scores.softmax(-1) @ heads(vs)).transpose(1, 2).reshape(n, length, e)
    return proj("out_proj", context, q.out_proj.bias)


def test_quantized_projections_against_attention_written_out() -> None:
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    wqs = {p: LSQWeightQuantizer(2) for p in PROJECTIONS}
    iqs = {p: LSQActQuantizer(4, signed=True) for p in PROJECTIONS}
    q = QuantMultiheadAttention.from_float(mha, wqs, iqs)
    x = torch.randn(2, 5, 8)
    for iq in iqs.values():  # a step that puts inputs on a coarse grid
        iq.calibrate(x)
    got = q(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(got, _reference(q, x))
    assert not torch.allclose(got, mha(x, x, x, need_weights=False)[0], atol=1e-2)


def test_each_projection_is_quantized_on_its_own_block() -> None:
    """The step of LSQ's init (2<|w|>/sqrt(Qp), Eq. 5) follows each (E, E) block: scaling the key
    block moves only the key quantizer's step."""
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(8, 2)
    with torch.no_grad():
        projection_weight(mha, "k_proj").mul_(100.0)
    q = QuantMultiheadAttention.from_float(mha, {p: LSQWeightQuantizer(2) for p in PROJECTIONS})
    steps = {p: float(q.weight_quantizers[p].scale()) for p in PROJECTIONS}
    for p in ("q_proj", "v_proj", "out_proj"):
        assert 30.0 < steps["k_proj"] / steps[p] < 300.0
        codes = (q.quantized_weight(p) / steps[p]).detach()
        assert set(codes.round().unique().tolist()) <= {-2.0, -1.0, 0.0, 1.0}


def test_gradients_reach_the_weights_and_the_quantizers() -> None:
    torch.manual_seed(4)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q = QuantMultiheadAttention.from_float(
        mha, {p: LSQWeightQuantizer(3) for p in PROJECTIONS},
        {"out_proj": LSQActQuantizer(4, signed=True)})
    x = torch.randn(2, 5, 8)
    q(x, x, x)[0].square().sum().backward()
    assert mha.in_proj_weight.grad is not None
    assert mha.out_proj.weight.grad is not None
    for p in PROJECTIONS:
        assert any(t.grad is not None for t in q.weight_quantizers[p].parameters()), p


def test_bad_slots_name_the_field_and_what_is_allowed() -> None:
    mha = nn.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match=r"weight_quantizers has keys \['in_proj'\]; allowed"):
        QuantMultiheadAttention.from_float(mha, {"in_proj": LSQWeightQuantizer(2)})
    with pytest.raises(ValueError, match=r"input_quantizers\['q_proj'\] must be a"):
        QuantMultiheadAttention.from_float(mha, None, {"q_proj": nn.ReLU()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"mha must be an nn\.MultiheadAttention"):
        QuantMultiheadAttention.from_float(nn.Linear(2, 2))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.ffn = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(F.relu(self.ffn(h)).mean(1))


def _quantize(model: nn.Module, recipe: str, **kw: object) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("error", quant.UnquantizedLayersWarning)  # nothing is left
        return quant.quantize(model, recipe, 2, 2, **kw)  # type: ignore[arg-type]


def test_recipes_quantize_every_projection() -> None:
    q = _quantize(Encoder(), "lsq")
    assert q.attn.projection_bits == {p: (2, 2) for p in PROJECTIONS}
    q = _quantize(Encoder(), "pact_sawb", overrides={"attn": (4, 8)})
    assert q.attn.projection_bits == {p: (4, None) for p in PROJECTIONS}  # weights-only recipe
    assert "attn" in q.quantize_report.quantized_layers


def test_attention_reading_the_input_is_a_first_layer() -> None:
    class AttentionFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(6, 2, batch_first=True)
            self.head = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.attn(x, x, x, need_weights=False)[0].mean(1))

    q = _quantize(AttentionFirst(), "pact_sawb")  # first/last layers: full precision
    assert q.attn.projection_bits == {p: (None, None) for p in PROJECTIONS}
    assert q.quantize_report.first_layers == ("attn",)
    q = _quantize(AttentionFirst(), "llsqf")  # quantizes the network input of a first layer
    bits = q.attn.projection_bits
    assert [bits[p][1] for p in PROJECTIONS] == [2, 2, 2, None]  # not the context


def test_wrpn_weight_gain_is_fitted_per_projection() -> None:
    torch.manual_seed(5)
    model = Encoder()
    with torch.no_grad():
        projection_weight(model.attn, "v_proj").mul_(10.0)
    q = _quantize(model, "wrpn")
    for p in PROJECTIONS:
        w = q.attn.projection_weight(p).detach()
        # after the gain the grid's levels {-1, 0, 1} are MSE-optimal: a scale of ~1 per block
        assert 0.3 < float(w.abs().max()) < 5.0, p


def test_workload_gives_each_projection_its_bits() -> None:
    model = Encoder()
    q = _quantize(model, "lsq", overrides={"attn": (4, 8)})
    wq, wf = (workloads.extract(m, (5, 6)) for m in (q, model))
    assert [(la.name, la.macs) for la in wq] == [(la.name, la.macs) for la in wf]
    for p in PROJECTIONS:
        assert (wq[f"attn.{p}"].w_bits, wq[f"attn.{p}"].a_bits) == (4, 8)
    assert wq["attn.scores"].a_bits == 16  # Q K^T reads unquantized projection outputs
    assert (wq["ffn"].w_bits, wq["ffn"].a_bits) == (2, 2)


def test_workloads_refuses_bad_projection_bits() -> None:
    class Declares(nn.MultiheadAttention):
        weight_bits = None
        act_bits = None
        projection_bits = {"q_proj": (0, None)}  # noqa: RUF012

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = Declares(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x)[0]

    with pytest.raises(ValueError, match=r"projection_bits\['q_proj'\] weight bits=0 is invalid"):
        workloads.extract(Net(), (3, 4))


def test_training_phases_switch_the_attention_quantizers() -> None:
    """QN's phase 1 trains weight quantization with activation quantization off (Sec. 4.1):
    set_phase reaches the attention's per-projection quantizers too."""
    from quant.hooks import set_phase
    from quant.procedure import Phase

    q = _quantize(Encoder(), "lsq")
    set_phase(q, Phase("weights only", 1, quantize_weights=True, quantize_acts=False))
    assert all(q.attn.weight_quantizers[p].enabled for p in PROJECTIONS)
    assert not any(q.attn.input_quantizers[p].enabled for p in PROJECTIONS)
    assert not q.ffn.input_quantizer.enabled


@pytest.mark.parametrize("recipe", quant.recipes())
def test_every_recipe_trains_an_attention_model(recipe: str) -> None:
    """One step of the training hooks (calibrate, param groups, regularizer, LLSQ's simulated
    gradient) on a model with attention, then a finite eval under no_grad."""
    from quant import hooks

    torch.manual_seed(0)
    x, y = torch.randn(8, 5, 6), torch.randint(0, 4, (8,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quant.quantize(Encoder(), recipe, 2, 2)
    hooks.calibrate(q, x)
    opt = torch.optim.SGD(hooks.param_groups(q, 0.01), lr=0.01)
    hooks.on_epoch_start(q, 0)
    loss = F.cross_entropy(q(x), y) + hooks.regularization_loss(q)
    loss.backward()
    hooks.after_backward(q)
    opt.step()
    with torch.no_grad():
        assert torch.isfinite(q.eval()(x)).all()
