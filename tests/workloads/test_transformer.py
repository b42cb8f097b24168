"""torch's Transformer modules trace into workload graphs (their fast-path checks broke torch.fx).

Oracles: the closed-form GEMM MACs of a Transformer layer (Vaswani et al. 2017, Sec. 3.2.2 and
3.3: Q/K/V/out projections, Q K^T and P V per head, the two feed-forward linears), and
torch.utils.flop_counter, which counts the GEMM kernels PyTorch runs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workloads import ExtractError, extract

pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration:UserWarning",
                                        "ignore:enable_nested_tensor:UserWarning")

E, HEADS, FF, LAYERS = 32, 2, 64, 2


def encoder_macs(n: int, length: int, e: int = E, heads: int = HEADS, ff: int = FF,
                 layers: int = LAYERS) -> dict[str, int]:
    """Closed-form MACs of each GEMM of an encoder stack over n sequences of length tokens."""
    d = e // heads
    out: dict[str, int] = {}
    for i in range(layers):
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[f"layers.{i}.self_attn.{p}"] = n * length * e * e
        out[f"layers.{i}.self_attn.scores"] = n * heads * length * length * d   # Q K^T
        out[f"layers.{i}.self_attn.context"] = n * heads * length * length * d  # P V
        out[f"layers.{i}.linear1"] = n * length * e * ff
        out[f"layers.{i}.linear2"] = n * length * ff * e
    return out


def torch_macs(model: nn.Module, *xs: torch.Tensor) -> int:
    """MACs of the GEMM kernels one forward pass runs (train mode with the default dropout, so
    attention takes the unfused path whose bmm kernels the counter sees)."""
    model.train()
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), \
            FlopCounterMode(display=False) as counter:
        model(*xs)
    return counter.get_total_flops() // 2


def small_encoder(**kw: object) -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, HEADS, dim_feedforward=FF, batch_first=True, **kw)  # type: ignore[arg-type]
    return nn.TransformerEncoder(layer, num_layers=LAYERS)


def test_transformer_encoder_traces_to_its_gemms() -> None:
    model = small_encoder()
    n, length = 3, 10
    wl = extract(model, (length, E), batch=n)
    want = encoder_macs(n, length)
    assert {la.name: la.macs for la in wl.compute_layers()} == want
    assert wl.total_macs == sum(want.values()) == 2 * (4 * n * length * E * E
                                                       + 2 * n * length * length * E
                                                       + 2 * n * length * E * FF)
    assert wl.total_macs == torch_macs(model, torch.zeros(n, length, E))
    # the layers chain: post-norm residual blocks, layer 0's output feeds layer 1's projections
    assert wl.predecessors("layers.0.linear1") == ["layers.0.norm1"]
    assert "layers.0.norm2" in wl.predecessors("layers.1.self_attn.q_proj")
    assert wl["layers.1.self_attn.scores"].op == "matmul"
    weights = sum(p.numel() for k, p in model.named_parameters() if k.endswith("weight")
                  and "norm" not in k)
    assert sum(la.weight_elems for la in wl.compute_layers()) == weights
    assert not wl.lint()
    assert type(model) is nn.TransformerEncoder  # the model itself is left as it was


def test_encoder_layer_alone_and_pre_norm() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, HEADS, dim_feedforward=FF, batch_first=True,
                                       norm_first=True)
    wl = extract(layer, (7, E), batch=2)
    want = {k.removeprefix("layers.0."): v for k, v in encoder_macs(2, 7, layers=1).items()}
    assert {la.name: la.macs for la in wl.compute_layers()} == want
    assert wl.predecessors("self_attn.q_proj") == ["norm1"]  # pre-norm: the norm comes first


class Tagger(nn.Module):
    """A user model around an encoder: embedding, a causal mask buffer, a final norm, a head."""

    def __init__(self, batch_first: bool = True, causal: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(8, E)
        layer = nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(E))
        self.head = nn.Linear(E, 5)
        self.causal = causal
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = self.encoder(h, mask=self.mask, is_causal=True) if self.causal else self.encoder(h)
        return self.head(h)


@pytest.mark.parametrize(("batch_first", "causal"), [(True, False), (True, True), (False, False)])
def test_encoder_inside_a_user_model(batch_first: bool, causal: bool) -> None:
    torch.manual_seed(0)
    model = Tagger(batch_first, causal)
    wl = extract(model, (10, 8), batch=3)
    # batch_first=False reads the (3, 10, 8) input as 3 tokens of 10 sequences
    n, length = (3, 10) if batch_first else (10, 3)
    want = {f"encoder.{k}": v for k, v in encoder_macs(n, length).items()}
    want |= {"embed": 3 * 10 * 8 * E, "head": 3 * 10 * E * 5}
    assert {la.name: la.macs for la in wl.compute_layers()} == want
    assert wl.predecessors("head") == ["encoder.norm"]
    assert not wl.lint()


def test_full_transformer_inside_a_user_model_matches_torch() -> None:
    class Seq2Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = nn.Transformer(E, HEADS, 1, 1, FF, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.t(x, x[:, :4])

    torch.manual_seed(0)
    model = Seq2Seq()
    wl = extract(model, (10, E), batch=2)
    assert wl.total_macs == torch_macs(model, torch.zeros(2, 10, E))
    # decoder cross-attention: 4 queries against the encoder's 10 keys
    assert wl["t.decoder.layers.0.multihead_attn.scores"].macs == 2 * HEADS * 4 * 10 * (E // HEADS)


class Doubled(nn.TransformerEncoder):
    def forward(self, src: torch.Tensor, mask: object = None, src_key_padding_mask: object = None,
                is_causal: object = None) -> torch.Tensor:
        return 2 * super().forward(src, mask, src_key_padding_mask, is_causal)  # type: ignore[arg-type]


def test_an_overridden_forward_that_reaches_the_fast_path_is_one_clear_error() -> None:
    model = Doubled(nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True), 1)
    with pytest.raises(ExtractError) as info:
        extract(model, (10, E), batch=2)
    msg = str(info.value)
    assert msg.startswith("cannot trace Doubled with torch.fx: in the root module")
    assert "Doubled overrides forward, and torch's TransformerEncoder.forward" in msg
    assert "Fix: keep torch's forward, or call the layers" in msg

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.enc(x)

    with pytest.raises(ExtractError, match=r"in module 'enc' \(Doubled\).*Doubled overrides "
                       "forward"):
        extract(Wrap(), (10, E), batch=2)


def test_a_subclass_keeping_torchs_forward_traces() -> None:
    class Named(nn.TransformerEncoder):
        pass

    model = Named(nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True), LAYERS)
    wl = extract(model, (6, E), batch=2)
    assert wl.total_macs == sum(encoder_macs(2, 6).values())


def test_simulate_cli_runs_a_user_encoder_and_refuses_an_untraceable_one(
        tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    """`--model file.py:factory` (README "your own models"): the encoder simulates; an override
    that reaches torch's fast-path checks is one ``error:`` line, exit 2, nothing written."""
    from pathlib import Path

    from dse.simulate import main

    root = Path(str(tmp_path))
    (root / "nets.py").write_text(
        "import torch.nn as nn\n"
        "INPUT_SHAPE = (10, 32)\n"
        "def encoder():\n"
        "    return nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 2, 64, batch_first=True),"
        " 2)\n"
        "class Doubled(nn.TransformerEncoder):\n"
        "    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):\n"
        "        return 2 * super().forward(src, mask, src_key_padding_mask, is_causal)\n"
        "def doubled():\n"
        "    return Doubled(nn.TransformerEncoderLayer(32, 2, 64, batch_first=True), 2)\n")
    ok = root / "ok"
    assert main(["--model", f"{root / 'nets.py'}:encoder", "--arch", "sysml19", "--batch", "2",
                 "--out", str(ok)]) == 0
    assert (ok / "layers.csv").exists()
    capsys.readouterr()
    bad = root / "bad"
    assert main(["--model", f"{root / 'nets.py'}:doubled", "--arch", "sysml19",
                 "--out", str(bad)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("error: --model=")
    assert "Doubled overrides forward" in err
    assert not bad.exists()
