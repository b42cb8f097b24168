"""quant.quantize / quant.recipes: module swaps, bits per layer, first/last/shortcut handling,
overrides, input not mutated, clear errors, and agreement with workloads.extract."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import quant
import workloads
from quant import QuantAct, QuantConv2d, QuantLinear, hooks, quantize, recipes
from quant.methods.lsq import LSQActQuantizer
from quant.methods.pact import PACT
from quant.methods.sawb import SAWB

EXPECTED = ["fp32", "pact", "sawb", "pact_sawb", "pact_sawb_fpsc", "lsq", "llsq", "llsqf", "qn",
            "crelu_binary", "dorefa", "wrpn"]
SHORTCUT = "layer1.1.shortcut.0"
INNER = ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"]
RELUS = ["relu", "layer1.0.relu1", "layer1.0.relu2", "layer1.1.relu1", "layer1.1.relu2"]


def _bits(model: nn.Module) -> dict[str, tuple[int | None, int | None]]:
    return {n: (m.weight_bits, m.act_bits) for n, m in model.named_modules()
            if isinstance(m, QuantConv2d | QuantLinear)}


def test_recipe_names() -> None:
    assert recipes() == EXPECTED
    with pytest.raises(ValueError, match="unknown recipe 'pactt'; available: fp32, pact"):
        quantize(nn.Linear(2, 2), "pactt")


def test_pact_sawb_layers(tiny_resnet: nn.Module, image_batch: torch.Tensor) -> None:
    q = quantize(tiny_resnet, "pact_sawb", w_bits=2, a_bits=3)
    bits = _bits(q)
    assert bits["conv1"] == (None, None)
    assert bits["fc"] == (None, None)
    for name in [*INNER, SHORTCUT]:
        assert bits[name] == (2, None), name  # inputs come from PACT QuantActs
        assert isinstance(q.get_submodule(name).weight_quantizer, SAWB)
    for name in RELUS:
        act = q.get_submodule(name)
        assert isinstance(act, QuantAct)
        assert isinstance(act.quantizer, PACT)
        assert act.pre is None
        assert act.act_bits == 3
    assert not any(isinstance(m, nn.ReLU) for m in q.modules())
    assert torch.isfinite(q(image_batch)).all()


def test_fpsc_and_shortcut_bits(tiny_resnet: nn.Module) -> None:
    assert _bits(quantize(tiny_resnet, "pact_sawb_fpsc"))[SHORTCUT] == (None, None)
    assert _bits(quantize(tiny_resnet, "pact_sawb_fpsc", shortcut_bits=8))[SHORTCUT] == (8, None)
    assert _bits(quantize(tiny_resnet, "pact_sawb", shortcut_bits=32))[SHORTCUT] == (None, None)
    q = quantize(tiny_resnet, "pact_sawb_fpsc")
    # the ReLU shared by layer1.1.conv1 and the shortcut (layer1.0.relu2) stays a ReLU; its PACT
    # quantizer moved to conv1's input, so only the shortcut reads full-precision values
    assert _bits(q)["layer1.1.conv1"] == (2, 2)
    assert all(_bits(q)[n] == (2, None) for n in INNER if n != "layer1.1.conv1")
    assert isinstance(q.get_submodule("layer1.0.relu2"), nn.ReLU)


def test_fpsc_shortcut_inputs_and_weights_are_full_precision_in_the_workload(
        tiny_resnet: nn.Module, image_batch: torch.Tensor) -> None:
    """PACT-SAWB Sec. 5: "not quantizing the input activations or the weights in the shortcut
    paths". workloads.extract's full precision is its default_bits (16)."""
    def layer_bits(model: nn.Module) -> dict[str, tuple[int, int]]:
        w = workloads.extract(model, input_shape=(3, 8, 8), default_bits=16)
        return {la.name: (la.w_bits, la.a_bits) for la in w.compute_layers()}

    fpsc = layer_bits(quantize(tiny_resnet, "pact_sawb_fpsc"))
    assert fpsc[SHORTCUT] == (16, 16)
    assert fpsc["layer1.1.conv1"] == (2, 2)  # its sibling reader stays 2-bit
    # shortcut weights alone in full precision (the former fpsc): the input is still 2-bit
    assert layer_bits(quantize(tiny_resnet, "pact_sawb", shortcut_bits=32))[SHORTCUT] == (16, 2)
    # numerically: the shortcut sees the unquantized ReLU output
    q = quantize(tiny_resnet, "pact_sawb_fpsc", act_kwargs={"alpha_init": 1.0}).eval()
    seen: list[torch.Tensor] = []
    q.get_submodule(SHORTCUT).register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
    q(image_batch)
    moved = q.get_submodule("layer1.1.conv1").input_quantizer
    assert isinstance(moved, PACT)
    assert not torch.equal(moved(seen[0]), seen[0])  # off the 2-bit grid: not quantized


def test_first_last_bits(tiny_resnet: nn.Module) -> None:
    b = _bits(quantize(tiny_resnet, "pact_sawb", first_last_bits=4))
    assert b["conv1"] == (4, None)
    assert b["fc"] == (4, None)
    lsq = _bits(quantize(tiny_resnet, "lsq", w_bits=3, a_bits=2))
    assert lsq["conv1"] == (8, 8)
    assert lsq["fc"] == (8, 8)
    assert all(lsq[n] == (3, 2) for n in INNER)
    full = _bits(quantize(tiny_resnet, "llsqf", w_bits=4, a_bits=4))
    assert full["conv1"] == (4, 4)
    assert full["fc"][0] == 4
    assert _bits(quantize(tiny_resnet, "llsq", w_bits=4, a_bits=4))["conv1"] == (None, None)


def test_lsq_quantizes_inputs_and_keeps_relus(tiny_resnet: nn.Module,
                                              image_batch: torch.Tensor) -> None:
    q = quantize(tiny_resnet, "lsq", w_bits=2, a_bits=2)
    assert sum(isinstance(m, nn.ReLU) for m in q.modules()) == len(RELUS)
    first_in = q.conv1.input_quantizer
    assert isinstance(first_in, LSQActQuantizer)
    hooks.calibrate(q, image_batch)
    assert first_in.signed  # the image is signed; post-ReLU inputs are not
    assert not q.layer1[0].conv1.input_quantizer.signed
    assert torch.isfinite(q(image_batch)).all()


def test_overrides(tiny_resnet: nn.Module) -> None:
    q = quantize(tiny_resnet, "lsq", overrides={"layer1.0.conv1": (4, 8), "fc": 32,
                                                "layer1.0.conv2": 3})
    b = _bits(q)
    assert b["layer1.0.conv1"] == (4, 8)
    assert b["fc"] == (None, None)
    assert b["layer1.0.conv2"] == (3, 3)
    p = quantize(tiny_resnet, "pact_sawb", overrides={"layer1.0.relu1": 32, "relu": 4})
    assert isinstance(p.layer1[0].relu1, nn.ReLU)
    assert p.relu.act_bits == 4
    with pytest.raises(ValueError, match="layer9"):
        quantize(tiny_resnet, "lsq", overrides={"layer9.conv": 4})
    with pytest.raises(ValueError, match="overrides"):
        quantize(tiny_resnet, "lsq", overrides={"fc": (4, 0)})


def test_w32_or_a32_leaves_that_side_unquantized(tiny_resnet: nn.Module) -> None:
    w32 = quantize(tiny_resnet, "pact_sawb", w_bits=32, a_bits=2)  # Table 3 W32-Ap2
    assert all(b == (None, None) for b in _bits(w32).values())
    assert sum(isinstance(m, QuantAct) for m in w32.modules()) == len(RELUS)
    a32 = quantize(tiny_resnet, "pact_sawb", w_bits=2, a_bits=32)  # Ws2-A32
    assert not any(isinstance(m, QuantAct) for m in a32.modules())
    assert _bits(a32)[INNER[0]] == (2, None)


def test_input_model_not_mutated(tiny_resnet: nn.Module, image_batch: torch.Tensor) -> None:
    ref = copy.deepcopy(tiny_resnet)
    before = {k: v.clone() for k, v in tiny_resnet.state_dict().items()}
    q = quantize(tiny_resnet, "pact_sawb_fpsc")
    opt = torch.optim.SGD(q.parameters(), lr=1.0)
    q(image_batch).sum().backward()
    opt.step()
    after = tiny_resnet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [type(m) for m in tiny_resnet.modules()] == [type(m) for m in ref.modules()]
    assert type(quantize(tiny_resnet, "fp32").conv1) is nn.Conv2d


@pytest.mark.parametrize("recipe", EXPECTED)
@pytest.mark.parametrize("bits", [2, 4])
def test_every_recipe_trains_one_step(recipe: str, bits: int, tiny_resnet: nn.Module,
                                      image_batch: torch.Tensor) -> None:
    q = quantize(tiny_resnet, recipe, w_bits=bits, a_bits=bits)
    q.train()
    hooks.calibrate(q, image_batch)
    hooks.on_epoch_start(q, 0)
    opt = torch.optim.SGD(hooks.param_groups(q, lr=0.01, weight_decay=1e-4), momentum=0.9)
    loss = nn.functional.cross_entropy(q(image_batch), torch.arange(4)) \
        + hooks.regularization_loss(q)
    loss.backward()
    hooks.after_backward(q)
    opt.step()
    q.eval()
    assert torch.isfinite(q(image_batch)).all()
    wb = {b[0] for n, b in _bits(q).items() if n in INNER}
    expected = {"fp32": set(), "pact": {None}}.get(recipe, {bits})
    assert wb == expected


@pytest.mark.parametrize(("recipe", "kwargs", "match"), [
    ("sawb", {"w_bits": 5}, "mse"),
    ("wrpn", {"w_bits": 1}, "bits"),
    ("lsq", {"a_bits": 1}, "a_bits"),
    ("pact", {"a_bits": 0}, "a_bits=0"),
    ("pact", {"w_bits": 17}, "w_bits=17"),
    ("pact", {"w_bits": True}, "w_bits"),
    ("pact_sawb", {"first_last_bits": 2.5}, "first_last_bits"),
    ("pact_sawb", {"shortcut_bits": -8}, "shortcut_bits"),
])
def test_bad_bits_raise(recipe: str, kwargs: dict, match: str, tiny_resnet: nn.Module) -> None:
    with pytest.raises(ValueError, match=match):
        quantize(tiny_resnet, recipe, **kwargs)


def test_already_quantized_model_is_refused(tiny_resnet: nn.Module) -> None:
    with pytest.raises(ValueError, match="already quantized"):
        quantize(quantize(tiny_resnet, "lsq"), "lsq")


def test_public_api() -> None:
    for name in ("quantize", "recipes", "sawb_coefficients", "fit_sawb_coefficients",
                 "to_integer", "QuantConv2d", "QuantLinear", "QuantAct", "hooks"):
        assert name in quant.__all__
        assert hasattr(quant, name)


def test_workloads_extract_sees_the_recipe_bits() -> None:
    model = workloads.zoo.get("resnet20", num_classes=10)
    q = quantize(model, "pact_sawb_fpsc", w_bits=2, a_bits=2)
    layers = workloads.extract(q, workloads.zoo.input_shape("resnet20")).layers
    conv = layers[layers.op.isin(["conv", "linear"])].set_index("module")
    for name, (wb, _) in _bits(q).items():
        if wb is not None:
            assert conv.loc[name, "w_bits"] == wb, name
    inner = conv[conv.role == ""]
    assert (inner.w_bits == 2).all()
    assert (inner.a_bits == 2).all()
    short = conv[conv.role == "shortcut"]
    assert len(short) == 2
    assert (short.w_bits > 2).all()


def test_high_precision_exceptions_use_the_sawb_mse_search(tiny_resnet: nn.Module) -> None:
    q = quantize(tiny_resnet, "pact_sawb", shortcut_bits=8, first_last_bits=16)
    assert q.get_submodule(SHORTCUT).weight_quantizer.method == "mse"
    assert q.conv1.weight_quantizer.method == "mse"
    assert q.conv1.weight_bits == 16
    assert q.layer1[0].conv1.weight_quantizer.method == "formula"


def test_quantizer_kwargs(tiny_resnet: nn.Module) -> None:
    q = quantize(tiny_resnet, "pact_sawb", act_kwargs={"alpha_init": 4.0},
                 weight_kwargs={"grid": "with_zero", "coefficients": (2.587, 1.693)})
    assert q.relu.quantizer.alpha.item() == 4.0
    wq = q.layer1[0].conv1.weight_quantizer
    assert wq.grid == "with_zero"
    assert wq.coefficients == (2.587, 1.693)
    with pytest.raises(ValueError, match="alpha_nit"):
        quantize(tiny_resnet, "pact", act_kwargs={"alpha_nit": 4.0})
    with pytest.raises(ValueError, match="weight_kwargs"):
        quantize(tiny_resnet, "sawb", weight_kwargs=["grid"])  # type: ignore[arg-type]
