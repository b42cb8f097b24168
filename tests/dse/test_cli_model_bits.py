"""``--w-bits``/``--a-bits`` without ``--recipe`` and ``--first-last-bits`` reach every compute
layer the workload models - Conv1d, ConvTranspose, attention projections and score/context
matmuls, LSTM/GRU gates, ``@``/einsum, functional F.conv2d/F.linear - not only nn.Conv2d /
nn.Linear; and the CLI's extraction errors advise its own flags, not ``extract()``'s arguments."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

NETS = textwrap.dedent("""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Seq1d(nn.Module):   # Conv1d -> ConvTranspose1d -> functional linear
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(3, 8, 3)
            self.up = nn.ConvTranspose1d(8, 8, 2, stride=2)
            self.w = nn.Parameter(torch.randn(4, 8))

        def forward(self, x):
            return F.linear(self.up(torch.relu(self.c1(x))).mean(-1), self.w)


    class Attn(nn.Module):    # q/k/v/out projections, scores, context, then @ and einsum
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x):
            y, _ = self.mha(x, x, x)
            s = y @ x.transpose(-1, -2)
            return torch.einsum("bij,bjd->bid", s.softmax(-1), x)


    class Rnn(nn.Module):     # LSTM then GRU: no Conv2d or Linear at all
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)
            self.gru = nn.GRU(16, 12, batch_first=True)

        def forward(self, x):
            return self.gru(self.lstm(x)[0])[0]


    class Func2d(nn.Module):  # functional conv first, nn.Conv2d in the middle, F.linear last
        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(4, 3, 3, 3))
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.w2 = nn.Parameter(torch.randn(5, 4 * 6 * 6))

        def forward(self, x):
            y = self.conv(torch.relu(F.conv2d(x, self.w1, padding=1)))
            return F.linear(y.flatten(1), self.w2)


    class Own(nn.Linear):     # already quantized: the bits protocol
        def __init__(self, n):
            super().__init__(n, n)
            self.weight_bits, self.act_bits = 2, 3


    def seq1d(): return Seq1d()
    def attn(): return Attn()
    def rnn(): return Rnn()
    def func2d(): return Func2d()
    def own(): return nn.Sequential(Own(16), nn.ReLU(), nn.Linear(16, 4))
    seq1d.input_shape, attn.input_shape, rnn.input_shape = (3, 20), (5, 16), (6, 8)
    func2d.input_shape, own.input_shape = (3, 6, 6), (16,)


    class Fft(nn.Module):     # an op qdse does not model
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(torch.fft.fft(x).real)


    class Branchy(nn.Module):  # control flow on a tensor value: torch.fx cannot trace it
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x[..., :4]


    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x, y):
            return self.fc(x + y)


    def fft(): return Fft()
    def branchy(): return Branchy()
    def two_inputs(): return TwoInputs()
    fft.input_shape = branchy.input_shape = two_inputs.input_shape = (5, 16)
""")

COMPUTE = ("conv", "linear", "matmul")
# every compute layer each net has, counted by hand (an LSTM/GRU layer is its ih and hh gemms)
N_COMPUTE = {"seq1d": 3, "attn": 8, "rnn": 4, "func2d": 3}


@pytest.fixture
def nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    monkeypatch.chdir(tmp_path)
    return path


def _bits(nets: Path, model: str, *flags: str) -> dict[str, tuple[int, int]]:
    """(w_bits, a_bits) of each compute layer in the layers.csv `dse.simulate` writes."""
    from dse.simulate import main

    out = nets.parent / f"o-{model}"
    assert main(["--model", f"{nets}:{model}", "--arch", "sysml19", *flags,
                 "--out", str(out)]) == 0
    rows = pd.read_csv(out / "layers.csv", dtype={"name": str})
    rows = rows[rows["op"].isin(COMPUTE)]
    return {r.name: (int(r.w_bits), int(r.a_bits)) for r in rows.itertuples()}


@pytest.mark.parametrize("model", sorted(N_COMPUTE))
def test_bits_without_a_recipe_set_every_compute_layer(nets: Path, model: str) -> None:
    assert set(_bits(nets, model).values()) == {(16, 16)}  # the flags are what changes them
    bits = _bits(nets, model, "--w-bits", "4", "--a-bits", "3")
    assert len(bits) == N_COMPUTE[model]
    assert bits == dict.fromkeys(bits, (4, 3))


@pytest.mark.parametrize(("model", "first", "last"), [
    ("seq1d", {"c1"}, {"linear"}),
    ("attn", {"mha.q_proj", "mha.k_proj", "mha.v_proj"}, {"einsum"}),
    ("rnn", {"lstm.l0.ih"}, {"gru.l0.hh"}),
    ("func2d", {"conv2d"}, {"linear"}),
])
def test_first_last_bits_go_to_the_first_and_last_compute_layers(
        nets: Path, model: str, first: set[str], last: set[str]) -> None:
    """First: the layers that read the network input (all of q/k/v do); last: the layer that
    makes the output - whatever module or function made them."""
    bits = _bits(nets, model, "--w-bits", "4", "--a-bits", "4", "--first-last-bits", "8")
    assert len(bits) == N_COMPUTE[model]
    edge = first | last
    assert {n for n, b in bits.items() if b == (8, 8)} == edge
    assert all(b == (4, 4) for n, b in bits.items() if n not in edge)


def test_a_quantized_module_keeps_its_own_bits(nets: Path) -> None:
    """docs/usage.md: a module following the bits protocol keeps its bits under --w-bits;
    --first-last-bits still sets the first and last layers."""
    assert _bits(nets, "own", "--w-bits", "4", "--a-bits", "4") == {"0": (2, 3), "2": (4, 4)}
    assert _bits(nets, "own", "--w-bits", "4", "--first-last-bits", "8") == {
        "0": (8, 8), "2": (8, 8)}


@pytest.mark.parametrize(("model", "words"), [
    ("fft", ["'fft_fft'", "--ignore-unsupported=fft_fft", "--model FILE.json"]),
    ("branchy", ["cannot trace Branchy", "module:factory", "torch.where", "--model FILE.json"]),
    ("two_inputs", ["more than one input ('y')", "the command line feeds exactly one tensor",
                    "module:factory"]),
])
def test_extraction_errors_name_the_cli_s_flags(nets: Path, model: str, words: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from dse.simulate import main

    out = nets.parent / "never"
    assert main(["--model", f"{nets}:{model}", "--arch", "sysml19", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"error: --model='{nets}:{model}'")
    for w in words:
        assert w in line, line
    # no keyword argument of extract() offered as if the command line took it
    for api in ("ignore_unsupported=", "concrete_args=", "leaf_modules=", "to extract()"):
        assert api not in line, line
    assert not out.exists()


def test_the_advised_flag_works(nets: Path) -> None:
    """The flag the fft error names lets the same command run, the op listed as ignored."""
    from dse.simulate import main

    out = nets.parent / "o"
    assert main(["--model", f"{nets}:fft", "--arch", "sysml19", "--ignore-unsupported=fft_fft",
                 "--out", str(out)]) == 0
    assert "fft_fft" in (out / "summary.md").read_text()


def test_onnx_unsupported_ops_name_the_flag(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`from_onnx`'s refusal is rewritten the same way, and the flag it names works."""
    onnx = pytest.importorskip("onnx", reason="ONNX input needs the onnx package")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from dse.simulate import main

    graph = helper.make_graph(
        [helper.make_node("CumSum", ["x", "axis"], ["c"], name="cs"),
         helper.make_node("MatMul", ["c", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.zeros((16, 4), np.float32), "w"),
         numpy_helper.from_array(np.array(1, np.int64), "axis")])
    path = tmp_path / "cumsum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    out = tmp_path / "o"
    assert main(["--model", str(path), "--arch", "sysml19", "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    assert "'cs' (ONNX CumSum)" in line
    assert "--ignore-unsupported=CumSum" in line
    assert "from_onnx()" not in line
    assert "ignore_unsupported=" not in line
    assert not out.exists()
    assert main(["--model", str(path), "--arch", "sysml19", "--ignore-unsupported=CumSum",
                 "--out", str(out)]) == 0


def test_messages_without_api_advice_pass_unchanged() -> None:
    from dse.inputs import cli_advice

    plain = "input_shape=(3,) has 1 dims; layer 'fc' expects 2"
    assert cli_advice(plain) == plain
    own = "Fix: keep torch's forward, or call the layers from your forward"
    assert cli_advice(own) == own
