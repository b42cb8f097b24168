"""quant.quantize's first/last layers follow the dataflow (quant.ends), not __init__'s order.

Oracle: the workload graph's roles (`workloads.graph.end_layers` on the extracted float model),
an independent implementation on a different graph (networkx, after lowering), plus layers
picked by hand for each model."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import workloads
from quant import quantize
from quant.ends import end_layers
from workloads import zoo


class HeadDeclaredFirst(nn.Module):
    """The classifier is created before the stem: module order reads it as the first layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 10)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.body(F.relu(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class TwoStems(nn.Module):
    """Two convolutions read the input: both are first layers."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 4, 3, padding=1)
        self.right = nn.Conv2d(3, 4, 5, padding=2)
        self.mix = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(torch.cat([self.left(x), self.right(x)], 1))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class AttentionFront(nn.Module):
    """Self-attention reads the input: it is the first layer, not the feed-forward Linear
    behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.ffn = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(x, x, x, need_weights=False)[0]
        return self.head(F.relu(self.ffn(y)).mean(1))


class RecurrentFront(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.mid = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.mid(self.rnn(x)[0][:, -1])))


class FunctionalHead(nn.Module):
    """The last compute op is an F.linear on a bare Parameter: no swappable layer is last."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.w = nn.Parameter(torch.randn(10, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.adaptive_avg_pool2d(F.relu(self.body(F.relu(self.stem(x)))), 1).flatten(1)
        return F.linear(y, self.w)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Linear(8, 8)  # declared first, runs last
        self.a = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return self.b(self.a(x))
        return self.a(x)


#: model, input shape (no batch), expected (first, last) swappable layers
CASES = {
    "head_declared_first": (HeadDeclaredFirst, (3, 8, 8), ({"stem"}, {"fc"})),
    "two_stems": (TwoStems, (3, 8, 8), ({"left", "right"}, {"fc"})),
    "attention_front": (AttentionFront, (5, 16), ({"attn"}, {"head"})),
    "recurrent_front": (RecurrentFront, (6, 8), (set(), {"head"})),
    "functional_head": (FunctionalHead, (3, 8, 8), ({"stem"}, set())),
}


def _quantize(model: nn.Module, recipe: str = "pact_sawb") -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unquantized attention/LSTM/functional weights
        return quantize(model, recipe, 2, 2)


def _workload_ends(model: nn.Module, shape: tuple[int, ...],
                   swappable: set[str]) -> tuple[set[str], set[str]]:
    wl = workloads.extract(model, shape, batch=1)
    first, last = wl.first_last_layers()

    def module(op: str) -> str:  # an attention's out_proj op belongs to the attention module
        name = wl[op].module
        parent = name.rpartition(".")[0]
        return parent if name.endswith(".out_proj") and parent in swappable else name

    return ({module(n) for n in first} & swappable, {module(n) for n in last} & swappable)


@pytest.mark.parametrize("case", sorted(CASES))
def test_ends_follow_the_dataflow(case: str) -> None:
    cls, shape, (first, last) = CASES[case]
    model = cls().eval()
    swappable = {n for n, m in model.named_modules()
                 if type(m) in (nn.Conv2d, nn.Linear, nn.MultiheadAttention)}
    report = _quantize(model).quantize_report
    assert (set(report.first_layers), set(report.last_layers)) == (first, last)
    assert report.ends_found_by == "graph"
    assert _workload_ends(model, shape, swappable) == (first, last)


def test_end_layers_take_the_first_last_bits_and_the_rest_w_bits() -> None:
    q = _quantize(HeadDeclaredFirst())
    assert (q.stem.weight_bits, q.fc.weight_bits) == (None, None)  # pact_sawb: full precision
    assert q.body.weight_bits == 2  # module order kept this one at full precision


def test_two_first_layers_both_get_the_quantized_first_input_of_llsqf() -> None:
    q = _quantize(TwoStems(), "llsqf")
    assert q.left.input_quantizer is not None
    assert q.right.input_quantizer is not None
    assert q.mix.input_quantizer is None


@pytest.mark.parametrize("name", ["resnet20", "vgg_small", "mobilenet_v2"])
def test_zoo_ends_agree_with_the_workload_graph(name: str) -> None:
    model = zoo.get(name, num_classes=10)
    layers = [n for n, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]
    ends = end_layers(model, layers)
    shape = (3, 32, 32) if name != "mobilenet_v2" else (3, 64, 64)
    assert (set(ends.first), set(ends.last)) == _workload_ends(model, shape, set(layers))
    assert (ends.first, ends.last) == ((layers[0],), (layers[-1],))  # built in dataflow order


def test_untraceable_model_falls_back_to_module_order_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    report = _quantize(Untraceable(), "lsq").quantize_report
    assert (report.first_layers, report.last_layers) == (("b",), ("a",))
    assert report.ends_found_by.startswith("module order: torch.fx failed")
    assert "taken by module order" in caplog.text


def test_plain_conv_subclass_is_one_layer_not_its_functional_call() -> None:
    class MyConv(nn.Conv2d):
        pass

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = MyConv(3, 4, 3), MyConv(4, 4, 3), nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.b(self.a(x)))

    ends = end_layers(Net(), ["a", "b", "c"])
    assert (ends.first, ends.last, ends.found_by) == (("a",), ("c",), "graph")


def test_opaque_transformer_layer_lends_its_last_linear_to_the_last_role() -> None:
    enc = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    model = nn.Sequential(nn.Linear(8, 16), enc)
    ends = end_layers(model, ["0", "1.linear1", "1.linear2"])
    assert (ends.first, ends.last) == (("0",), ("1.linear2",))

