"""nn.MultiheadAttention and nn.LSTM/GRU/RNN are lowered to their GEMMs (issue 11, item 5).

Oracle: torch.utils.flop_counter.FlopCounterMode, which counts the mm/addmm/bmm kernels PyTorch
actually runs (2 flops per MAC), independent of our formulas.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workloads import ExtractError, extract

pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration:UserWarning")


def torch_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of the GEMM kernels one forward pass runs (train mode: in eval mode attention takes
    a fused fast path the counter cannot see, and oneDNN's fused LSTM is off for the same reason;
    no dropout is configured, so the maths is the same)."""
    model.train()
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), \
            FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


class Attn(nn.Module):
    def __init__(self, e: int = 16, heads: int = 4, batch_first: bool = True, **kw: object) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(e, heads, batch_first=batch_first, **kw)  # type: ignore[arg-type]
        self.fc = nn.Linear(e, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.attn(x, x, x)
        return self.fc(y)


@pytest.mark.parametrize(("batch_first", "kw"), [(True, {}), (False, {}),
                                                 (True, {"bias": False}),
                                                 (True, {"add_bias_kv": True})])
def test_attention_macs_match_the_kernels_torch_runs(batch_first: bool, kw: dict) -> None:
    model = Attn(batch_first=batch_first, **kw)
    wl = extract(model, (5, 16), batch=3)
    assert wl.total_macs == torch_macs(model, torch.zeros(3, 5, 16))
    names = {la.name: la for la in wl.compute_layers()}
    assert set(names) == {"attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.scores",
                          "attn.context", "attn.out_proj", "fc"}
    # closed forms (Vaswani et al. Sec. 3.2.2): N, L, E, H, d
    n, length, e, h, d = 3, 5, 16, 4, 4
    s = length + int("add_bias_kv" in kw) if batch_first else 3
    assert names["attn.q_proj"].macs == names["attn.out_proj"].macs == n * length * e * e
    assert names["attn.scores"].op == "matmul"
    assert names["attn.context"].op == "matmul"
    if batch_first:
        assert names["attn.scores"].macs == names["attn.context"].macs == n * h * length * s * d
    # weights: the module's projection matrices, no more, no less
    params = sum(p.numel() for k, p in model.attn.named_parameters() if "weight" in k)
    params += sum(p.numel() for k, p in model.attn.named_parameters() if k.startswith("bias_"))
    assert sum(names[f"attn.{p}"].weight_elems for p in ("q_proj", "k_proj", "v_proj",
                                                         "out_proj")) == params - 2 * e * int(
        "add_bias_kv" in kw)
    assert wl["attn.scores"].meta["fused"] == ["attn.softmax"]
    assert wl.predecessors("attn.scores") == ["attn.k_proj", "attn.q_proj"]
    assert wl.predecessors("fc") == ["attn.out_proj"]
    assert not wl.lint()


def test_cross_attention_reads_query_and_memory_separately() -> None:
    class Cross(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Linear(8, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True, kdim=6, vdim=6)
            self.mem = nn.Linear(8, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = self.mem(x)
            return self.attn(self.enc(x), m, m)[0]

    model = Cross()
    wl = extract(model, (7, 8), batch=2)
    assert wl.total_macs == torch_macs(model, torch.zeros(2, 7, 8))
    assert wl.predecessors("attn.q_proj") == ["enc"]
    assert wl.predecessors("attn.k_proj") == wl.predecessors("attn.v_proj") == ["mem"]
    assert wl["attn.k_proj"].c == 6


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 2, "bidirectional": True},
                                {"batch_first": True, "bias": False}])
def test_recurrent_macs_match_the_kernels_torch_runs(cls: type[nn.Module], kw: dict) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = cls(8, 16, **kw)
            self.head = nn.Linear(16 * (2 if kw.get("bidirectional") else 1), 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x)[0])

    model = Net()
    wl = extract(model, (5, 8), batch=3)
    assert wl.total_macs == torch_macs(model, torch.zeros(3, 5, 8))
    weights = sum(la.weight_elems for la in wl if la.module == "rnn")
    assert weights == sum(p.numel() for k, p in model.rnn.named_parameters() if "weight" in k)
    assert wl["rnn.l0.hh"].meta["steps"] == (3 if not kw.get("batch_first") else 5)
    assert wl["rnn.l0.hh"].meta["fused"] == ["rnn.l0.cell"]
    assert not wl.lint()


def test_lstm_projection_and_bidirectional_concat() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0]

    model = Net()
    wl = extract(model, (5, 8), batch=3)
    assert wl.total_macs == torch_macs(model, torch.zeros(3, 5, 8)) == 49_920
    assert sorted(wl.predecessors("rnn.l1.ih")) == ["rnn.l0.cat"]
    assert sorted(wl.predecessors("rnn.l0.cat")) == ["rnn.l0.proj", "rnn.l0_reverse.proj"]
    assert wl["rnn.l1.ih"].c == 2 * 4


def test_scaled_dot_product_attention_is_two_matmuls() -> None:
    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(16, 48)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, length, _ = x.shape
            q, k, v = self.qkv(x).view(n, length, 3, 4, 4).permute(2, 0, 3, 1, 4)
            return nn.functional.scaled_dot_product_attention(q, k, v)

    model = Heads()
    wl = extract(model, (6, 16), batch=2)
    sdpa = [la for la in wl.compute_layers() if la.op == "matmul"]
    assert [la.name.rsplit(".", 1)[1] for la in sdpa] == ["scores", "context"]
    assert [la.macs for la in sdpa] == [2 * 4 * 6 * 6 * 4] * 2          # N*H*L*S*d each
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):      # the unfused kernel: its GEMMs are visible
        assert wl.total_macs == torch_macs(model, torch.zeros(2, 6, 16))


def test_fft_is_an_error_naming_it_unless_ignored() -> None:
    class Spectral(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.fft.fft(x).real)

    with pytest.raises(ExtractError, match="fft_fft") as info:
        extract(Spectral(), (8,))
    assert "ignore_unsupported" in str(info.value)
    wl = extract(Spectral(), (8,), ignore_unsupported=["fft_fft"])
    assert list(wl.ignored().values()) == ["fft_fft"]
    assert "ignored" in wl.summary()
    assert "fft_fft" in wl.summary()
    assert wl.total_macs == 8 * 4
