"""'Bring your own model' gaps found by a sweep of user models outside the zoo (each test is one
fixed gap; MACs and vector ops are checked against closed forms written here)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workloads import ExtractError, extract


def test_dtype_casts_are_views_and_argmax_is_a_reduction() -> None:
    """`.long()` / `.int()` / `.bool()` casts move no data through arithmetic (they were refused
    as 'arithmetic qdse does not model'); argmax is a reduction (a `pool`)."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x.int().long().float())
            idx = y.argmax(-1, keepdim=True)
            return y + idx.float() * y.bool().float()

    wl = extract(Net(), (5, 6), batch=3)
    ops = {layer.name: layer for layer in wl}
    assert not any(layer.op == "other" for layer in wl)
    assert {"int", "long", "float", "bool"}.isdisjoint(ops)        # views: removed
    assert ops["argmax"].op == "pool"
    assert ops["argmax"].vector_ops == 3 * 5 * 4
    assert ops["fc"].macs == 3 * 5 * 6 * 4


def test_functional_norms_instance_norm_1d_and_rms_norm_are_norm_ops() -> None:
    """F.layer_norm / F.group_norm / F.normalize, nn.InstanceNorm1d and nn.RMSNorm are `norm`
    ops (one vector op per output element), as their module forms already were."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 8, 3, padding=1)
            self.inorm = nn.InstanceNorm1d(8, affine=True)
            self.rms = nn.RMSNorm(10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.rms(self.inorm(self.conv(x)))
            x = F.group_norm(x, 2)
            return F.normalize(F.layer_norm(x, (10,)), dim=-1)

    wl = extract(Net(), (2, 10), batch=2)
    norms = {la.name: la.vector_ops for la in wl if la.op == "norm"}
    assert norms == {n: 2 * 8 * 10 for n in ("inorm", "rms", "group_norm", "layer_norm",
                                             "normalize")}


def test_functional_1d_pool_window_spans_width_only() -> None:
    """F.max_pool1d(x, 3) reads 3 values per output, not 3x3 (it was costed as a 2-D window);
    functional pools record stride and padding given by keyword."""

    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.avg_pool1d(F.max_pool1d(x, 3), kernel_size=2, stride=1)
            z = F.max_pool2d(x.unsqueeze(1), kernel_size=(2, 3), stride=(1, 3), padding=(1, 0))
            return y.sum() + z.sum()

    wl = extract(Net(), (4, 12), batch=2)
    mp, ap, mp2 = wl["max_pool1d"], wl["avg_pool1d"], wl["max_pool2d"]
    assert (mp.r, mp.s, mp.stride, mp.vector_ops) == (1, 3, (1, 3), 2 * 4 * 4 * 3)
    assert (ap.r, ap.s, ap.stride, ap.vector_ops) == (1, 2, (1, 1), 2 * 4 * 3 * 2)
    # (2, 4, 12) -> padded to 6 x 12, 2x3 windows at stride (1, 3): 5 x 4 per channel
    assert (mp2.r, mp2.s, mp2.stride, mp2.padding) == (2, 3, (1, 3), (1, 0))
    assert mp2.vector_ops == 2 * 1 * 5 * 4 * 6


def test_optional_forward_inputs_are_traced_at_their_defaults() -> None:
    """extract() feeds one tensor and runs the others at their defaults; the trace now sees the
    same defaults, so `if mask is not None` takes the branch the run takes (it kept the masked
    branch, then shape propagation failed on masked_fill(None)) and `if flag:` traces."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.extra = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    deep: bool = False, *, scale: float = 1.0) -> torch.Tensor:
            y = self.fc(x) * scale
            if mask is not None:
                y = y.masked_fill(mask, 0.0)
            if deep:
                y = self.extra(y)
            return y

    wl = extract(Net(), (4, 8), batch=2)
    assert [la.name for la in wl if la.is_compute] == ["fc"]
    assert "masked_fill" not in {la.name for la in wl}
    deep = extract(Net(), (4, 8), batch=2, concrete_args={"deep": True})
    assert [la.name for la in deep if la.is_compute] == ["fc", "extra"]


@pytest.mark.parametrize(("equation", "a", "b", "kdim", "ncol"), [
    ("blhd,bmhd->bhlm", (2, 5, 3, 4), (2, 6, 3, 4), 4, 6),      # attention scores
    ("bhlm,bmhd->blhd", (2, 3, 5, 6), (2, 6, 3, 4), 6, 4),      # attention context
    ("ij,jk", (7, 4), (4, 5), 4, 5),                            # implicit output 'ik'
    ("...id,...jd->...ij", (7, 2, 3, 4), (7, 2, 5, 4), 4, 5),   # ellipsis batch dims
    ("bi,bi->b", (7, 4), (7, 4), 4, 1),                          # batched dot product
])
def test_two_operand_einsum_is_a_matmul(equation: str, a: tuple[int, ...], b: tuple[int, ...],
                                        kdim: int, ncol: int) -> None:
    """A two-operand einsum is a batched GEMM: MACs = numel(out) * K (K = the contracted
    letters), as torch computes it with bmm; a parameter operand is its weights."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(b))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum(equation, x, self.w)

    out = torch.einsum(equation, torch.zeros(a), torch.zeros(b))
    wl = extract(Net(), a[1:], batch=a[0])
    (mm,) = [la for la in wl if la.is_compute]
    assert (mm.op, mm.gemm_k, mm.gemm_n) == ("matmul", kdim, ncol)
    assert mm.macs == out.numel() * kdim
    assert mm.gemm_m * mm.gemm_n == out.numel()
    assert mm.weight_elems == torch.zeros(b).numel()


def test_einsum_of_one_or_three_operands() -> None:
    """One operand: a permutation is a view, anything else a reduction; three operands are
    refused by name."""

    class One(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bij->bj", torch.einsum("bij->bji", x))

    wl = extract(One(), (3, 4), batch=2)
    assert [(la.name, la.op, la.vector_ops) for la in wl if la.op not in ("input", "output")] \
        == [("einsum_1", "pool", 2 * 3 * 4)]

    class Three(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bi,bi,bi->b", x, x, x)

    with pytest.raises(ExtractError, match=r"op 'einsum' \(einsum\) has arithmetic") as info:
        extract(Three(), (4,), batch=2)
    assert "lowered functions: F.conv1d/conv2d" in str(info.value)    # what is supported


def test_transposed_convs_are_col2im_gemms() -> None:
    """nn.ConvTranspose1d/2d and F.conv_transpose2d (refused before) are the GEMM PyTorch runs:
    every input pixel times the whole kernel, MACs = N*H*W*C/groups*K*R*S (torch's flop count),
    as a 1x1 conv to K*R*S columns at the input resolution; the output edge is the real
    K x Ho x Wo tensor."""

    class UpNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1,
                                         groups=2, bias=False)
            self.w = nn.Parameter(torch.zeros(6, 3, 4, 4))      # (C, K/groups, R, S)
            self.up1d = nn.ConvTranspose1d(3, 5, 4, stride=2, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.conv_transpose2d(self.up(x), self.w, stride=2, padding=1)
            return self.up1d(y.flatten(2))

    wl = extract(UpNet(), (8, 5, 7), batch=2)
    up, fn, up1d = wl["up"], wl["conv_transpose2d"], wl["up1d"]
    assert up.macs == 2 * 5 * 7 * (8 // 2) * 6 * 3 * 3
    assert (up.gemm_m, up.gemm_n, up.gemm_k) == (2 * 5 * 7, 6 * 9 // 2, 8 // 2)
    assert up.weight_elems == 8 * 3 * 9
    assert up.output_elems == 2 * 6 * 10 * 14                  # (5-1)*2 - 2 + 3 + 1 = 10, 14
    assert up.meta["transposed"]["stride"] == [2, 2]
    assert up.meta["transposed"]["out_hw"] == [10, 14]
    assert fn.macs == 2 * 10 * 14 * 6 * 3 * 16
    assert fn.weight_elems == 6 * 3 * 16
    length = 20 * 28                                           # (10-1)*2 - 2 + 4 = 20, 28
    assert up1d.macs == 2 * length * 3 * 5 * 4
    assert up1d.meta["transposed"]["stride"] == [1, 2]
    assert up1d.output_elems == 2 * 5 * (2 * length)
    assert wl.lint() == []
    row = next(line for line in wl.summary().splitlines() if line.startswith("up "))
    assert "6x10x14" in row                    # its real output, not the GEMM's 27 columns
    assert "3x3/2T" in row


def test_unsupported_module_called_in_a_loop_is_named_once() -> None:
    """An unsupported module stepped in a Python loop was listed once per call (six copies of
    the same sentence); the error names it once, with the other nodes."""

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bil = nn.Bilinear(4, 4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(6):
                x = self.bil(x, x)
            return x

    with pytest.raises(ExtractError) as info:
        extract(Loop(), (4,))
    msg = str(info.value)
    assert msg.count("module 'bil' (Bilinear)") == 1
    assert "(also at 5 more node(s): 'bil:1', 'bil:2', 'bil:3', 'bil:4', ...)" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(("cell", "gates"), [(nn.LSTMCell, 4), (nn.GRUCell, 3)])
def test_recurrent_cell_stepped_in_a_loop(cell: type[nn.Module], gates: int) -> None:
    """nn.LSTMCell / GRUCell (refused before) are one step of the recurrent layer: per call an
    ``ih`` GEMM (N x in x G*H) and an ``hh`` GEMM (N x H x G*H) reading the previous step."""

    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = cell(5, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.new_zeros(x.shape[0], 7)
            state: object = (h, h) if gates == 4 else h
            for t in range(3):
                state = self.cell(x[:, t], state)
                h = state[0] if gates == 4 else state    # type: ignore[index]
            return h

    wl = extract(Loop(), (3, 5), batch=2)
    per_step = 2 * 5 * gates * 7 + 2 * 7 * gates * 7
    assert wl.total_macs == 3 * per_step
    assert wl["cell:2.l0.hh"].meta["steps"] == 1
    assert wl.predecessors("cell:2.l0.hh") == ["cell:1.l0.hh", "cell:2.l0.ih"]
    assert wl["cell:2.l0.ih"].weight_elems == 5 * gates * 7


def test_embedding_is_a_gather_of_its_table() -> None:
    """nn.Embedding (refused before) is a lookup, no arithmetic: a memory-only `resize` (like
    torch.gather) whose weights are its table; a model reading token ids directly gets integer
    zeros as its input (a float input made the lookup fail)."""

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.fc = nn.Linear(8, 3)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.fc(self.emb(tokens))

    wl = extract(Tagger(), (9,), batch=2)
    emb = wl["emb"]
    assert (emb.op, emb.macs, emb.weight_elems, emb.output_elems) == ("resize", 0, 50 * 8,
                                                                      2 * 9 * 8)
    assert wl.total_macs == 2 * 9 * 8 * 3


def test_first_and_last_roles_are_the_graphs_ends_not_module_order() -> None:
    """`first` goes to the compute layers that read the input and `last` to those making the
    output, whatever made them. By module order (the old rule) attention's `out_proj` was
    `first` - its in-projection is no submodule - and an LSTM model had no `first` at all."""

    class Att(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
            self.head = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, _ = self.mha(x, x, x)
            return self.head(y)

    class Rnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, _ = self.lstm(x)
            return self.fc(y[:, -1])

    def roles(wl) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for la in wl.compute_layers():
            out.setdefault(la.role, []).append(la.name)
        return out

    att = extract(Att(), (5, 16), batch=1)
    assert roles(att)["first"] == ["mha.k_proj", "mha.q_proj", "mha.v_proj"]
    assert roles(att)["last"] == ["head"]
    assert att.first_last_layers() == (["mha.k_proj", "mha.q_proj", "mha.v_proj"], ["head"])
    rnn = extract(Rnn(), (7, 8), batch=1)
    assert roles(rnn)["first"] == ["lstm.l0.ih"]  # hh is fed by ih
    assert roles(rnn)["last"] == ["fc"]
