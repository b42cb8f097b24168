"""Each recipe's training procedure (quant/procedure.py) and what quant.train does with it:
LSQ's reduced weight decay, CReLU's zero weight decay and clip decay, QN's frozen biases, three
phases and gradient clipping, WRPN's width, and clipping levels / LLSQ scales that really learn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

import quant
from quant import hooks
from quant import train as qtrain
from quant.methods.crelu import CReLUActQuantizer
from quant.methods.llsq import LLSQActQuantizer
from quant.methods.qnets import QNQuantizer
from quant.procedure import DIGITS_CLIP_DECAY, JOINT, PROCEDURES, Phase, Procedure
from workloads import zoo

SYN = {"data": "synthetic", "batch_size": 32, "seed": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_recipe_carries_its_procedure_with_a_citation() -> None:
    assert set(PROCEDURES) == set(quant.recipes())
    for name in quant.recipes():
        proc = quant.get_recipe(name).procedure
        assert proc is PROCEDURES[name]
        assert proc.cite
        assert set(proc.ours) <= set(Procedure.__dataclass_fields__), name


def test_procedure_values_follow_the_papers() -> None:
    lsq = PROCEDURES["lsq"]  # LSQ Sec. 3.1 / Table 2: x1/2 at 3 bits, x1/4 at 2 bits
    assert [lsq.weight_decay_at(b) for b in (2, 3, 4, 8)] == pytest.approx(
        [lsq.weight_decay / 4, lsq.weight_decay / 2, lsq.weight_decay, lsq.weight_decay])
    assert PROCEDURES["pact_sawb"].weight_decay_at(2) == PROCEDURES["pact_sawb"].weight_decay
    crelu = PROCEDURES["crelu_binary"]  # CReLU Sec. 4: weight decay 0, lambda on c
    assert crelu.weight_decay == 0.0
    assert crelu.clip_decay == DIGITS_CLIP_DECAY
    qn = PROCEDURES["qn"]  # QN Sec. 4.1
    assert qn.grad_clip_norm == 5.0
    assert [p.name for p in qn.phases] == ["weights", "activations", "joint"]
    assert [qn.phase_at(e, 10).name for e in range(10)] == (
        ["weights"] * 3 + ["activations"] * 4 + ["joint"] * 3)
    wrpn = PROCEDURES["wrpn"]
    assert (wrpn.width, wrpn.from_scratch) == (2, True)
    assert all(p.width == 1 for n, p in PROCEDURES.items() if n != "wrpn")
    # Where each paper starts: WRPN Sec. 3 and PACT-SAWB Sec. 6 from random weights; LSQ
    # Sec. 3, LLSQ Fig. 1, CReLU Sec. 4 (and the rest) fine-tune a trained FP network.
    scratch = {"wrpn", "pact", "sawb", "pact_sawb", "pact_sawb_fpsc"}
    assert {n for n, p in PROCEDURES.items() if p.from_scratch} == scratch


def test_bad_procedures_are_refused() -> None:
    with pytest.raises(ValueError, match="phases"):
        Procedure("x", phases=(Phase("a", 0.5),))
    with pytest.raises(ValueError, match="width"):
        Procedure("x", width=0)
    with pytest.raises(ValueError, match="epoch_share"):
        Phase("a", 0.0)


def test_trainer_applies_lsq_weight_decay_at_two_bits() -> None:
    res = qtrain.train("digits_cnn", "lsq", 2, 2, epochs=1, **SYN)
    assert res.metrics["weight_decay"] == pytest.approx(PROCEDURES["lsq"].weight_decay / 4)
    res4 = qtrain.train("digits_cnn", "lsq", 4, 4, epochs=1, **SYN)
    assert res4.metrics["weight_decay"] == pytest.approx(PROCEDURES["lsq"].weight_decay)


def test_crelu_clip_is_in_the_clip_group_with_the_clip_decay() -> None:
    q = quant.quantize(zoo.get("digits_cnn"), "crelu_binary", 2, 2)
    crelus = [m for m in q.modules() if isinstance(m, CReLUActQuantizer)]
    assert crelus
    assert all(m.alpha_decay == 0.0 for m in crelus)  # no second L2 through the loss
    proc = PROCEDURES["crelu_binary"]
    groups = {g["name"]: g for g in hooks.param_groups(q, 0.01, proc.weight_decay,
                                                       proc.clip_decay)}
    clip_ids = {id(m.clip) for m in crelus}
    assert {id(p) for p in groups["clip"]["params"]} == clip_ids
    assert groups["clip"]["weight_decay"] == DIGITS_CLIP_DECAY
    assert groups["weights"]["weight_decay"] == 0.0
    assert "clip_l2_in_loss" not in groups


def test_qn_biases_are_frozen_after_initialisation() -> None:
    q = quant.quantize(zoo.get("digits_cnn"), "qn", 2, 2)
    qns = [m for m in q.modules() if isinstance(m, QNQuantizer)]
    assert qns
    assert not any(isinstance(m.biases, nn.Parameter) for m in qns)
    assert all(not m.biases.requires_grad for m in qns)


def test_set_phase_disables_and_freezes_quantizers() -> None:
    torch.manual_seed(0)
    q = quant.quantize(zoo.get("digits_cnn"), "qn", 2, 2).train()
    x = torch.randn(8, 1, 8, 8)
    hooks.calibrate(q, x)
    weights_phase, acts_phase, _ = PROCEDURES["qn"].phases
    acts = [m for m in q.modules() if isinstance(m, quant.QuantAct)]
    seen: dict[int, torch.Tensor] = {}
    for a in acts:
        a.register_forward_hook(lambda m, i, o: seen.__setitem__(id(m), (i[0], o)))
    hooks.set_phase(q, weights_phase)
    q(x)
    for a in acts:  # activation quantization off: the QuantAct is just its ReLU
        inp, out = seen[id(a)]
        assert torch.equal(out, torch.relu(inp))
        assert not any(p.requires_grad for p in a.quantizer.parameters())
    layers = [m for m in q.modules() if getattr(m, "weight_quantizer", None) is not None]
    assert all(m.weight_quantizer.enabled for m in layers)
    hooks.set_phase(q, acts_phase)
    assert all(not p.requires_grad for m in layers for p in m.weight_quantizer.parameters())
    assert all(p.requires_grad for a in acts for p in a.quantizer.parameters())
    q(x)
    inp, out = seen[id(acts[0])]
    assert not torch.equal(out, torch.relu(inp))  # quantized now
    hooks.set_phase(q, JOINT)
    assert all(p.requires_grad for m in layers for p in m.weight_quantizer.parameters())


def test_qn_training_runs_three_phases_and_clips_gradients(
        monkeypatch: pytest.MonkeyPatch) -> None:
    phases: list[str] = []
    norms: list[float] = []
    real_phase, real_clip = hooks.set_phase, torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(hooks, "set_phase",
                        lambda m, p: phases.append(p.name) or real_phase(m, p))

    def clip(params: object, max_norm: float, *a: object, **k: object) -> torch.Tensor:
        norms.append(max_norm)
        return real_clip(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    res = qtrain.train("digits_cnn", "qn", 2, 2, epochs=3, **SYN)
    assert phases == ["weights", "activations", "joint"]
    assert norms
    assert set(norms) == {5.0}
    assert res.metrics["grad_clip_norm"] == 5.0
    # and the clip holds: one more step's global gradient norm after clipping is <= 5
    model = res.model.train()
    x = torch.randn(64, 1, 8, 8) * 50  # a batch that makes large gradients
    loss = nn.functional.cross_entropy(model(x), torch.zeros(64, dtype=torch.long))
    loss.backward()
    real_clip(model.parameters(), 5.0)
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None))
    assert float(total) <= 5.0 + 1e-4


def test_wrpn_is_built_at_its_procedure_width() -> None:
    res = qtrain.train("digits_cnn", "wrpn", 2, 2, epochs=1, **SYN)
    assert res.metrics["width"] == 2
    wide = zoo.get("digits_cnn", width=2)
    assert res.metrics["num_params"] > sum(p.numel() for p in zoo.get("digits_cnn").parameters())
    assert res.model.features[0].weight.shape == wide.features[0].weight.shape


@pytest.mark.parametrize("recipe", ["pact_sawb", "crelu_binary"])
def test_clip_levels_move_under_the_task_gradient(recipe: str) -> None:
    """Started where they clip (0.5), the levels end far from where the clip decay alone would
    take them (issue 13: PACT alpha and CReLU c ended at their decay-only values)."""
    res = qtrain.train("digits_cnn", recipe, 2, 2, epochs=1, act_clip_init=0.5, **SYN)
    m = res.metrics
    levels = [k for k in m["param_curves"] if k.endswith((".alpha", ".clip"))]
    assert len(levels) == 3
    shifts = []
    for name in levels:
        assert m["param_start"][name] == pytest.approx(0.5)
        decay_only = qtrain.decay_only_curve(m, name)[-1]
        assert decay_only < 0.5  # the decay alone shrinks the level
        end = m["param_curves"][name][-1]
        # the decay-only oracle is exact to ~1e-7 (next test): every level felt the task
        assert abs(end - decay_only) > 1e-3, (name, end, decay_only)
        shifts.append(abs(end - decay_only))
    assert max(shifts) > 0.1  # and one of them moved far (one epoch of a tiny task)


@pytest.mark.parametrize("recipe", ["pact_sawb", "lsq"])
def test_decay_only_curve_matches_a_run_without_task_gradient(
        monkeypatch: pytest.MonkeyPatch, recipe: str) -> None:
    """The oracle itself: a run whose task loss is multiplied by 0 follows the curve - clipping
    levels under their clip decay, LSQ's step sizes (group "scale", never decayed) flat."""
    real_ce = nn.functional.cross_entropy
    monkeypatch.setattr(nn.functional, "cross_entropy", lambda *a, **k: 0.0 * real_ce(*a, **k))
    res = qtrain.train("digits_cnn", recipe, 2, 2, epochs=2, act_clip_init=0.5, **SYN)
    m = res.metrics
    checked = 0
    for name, curve in m["param_curves"].items():
        if m["param_group"][name] in ("clip", "scale"):
            assert curve == pytest.approx(qtrain.decay_only_curve(m, name), rel=1e-5), name
            checked += 1
    assert checked >= 2
    if recipe == "lsq":
        assert set(m["param_group"].values()) == {"scale"}


def test_llsq_activation_scale_follows_the_simulated_gradient() -> None:
    """LLSQ Sec. 3.3: alpha moves by lr * alpha^2 toward alpha/2 or 2 alpha when that
    quantizes with less error; it takes no weight decay, so its decay-only value is its start.
    Started 4x too large, training brings it back down."""
    torch.manual_seed(0)
    q = quant.quantize(zoo.get("digits_cnn"), "llsq", 2, 2).train()
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    hooks.calibrate(q, x)
    acts = [m for m in q.modules() if isinstance(m, LLSQActQuantizer)]
    calibrated = [float(a.alpha.detach()) for a in acts]
    with torch.no_grad():
        for a in acts:
            a.alpha.mul_(4.0)
    groups = hooks.param_groups(q, 0.2, 5e-4)
    assert {g["name"]: g["weight_decay"] for g in groups}["scale"] == 0.0
    opt = torch.optim.SGD(groups, lr=0.2, momentum=0.0)
    for _ in range(20):
        loss = nn.functional.cross_entropy(q(x), y)
        opt.zero_grad()
        loss.backward()
        hooks.after_backward(q)
        opt.step()
    for a, c in zip(acts, calibrated):
        assert float(a.alpha.detach()) < 0.6 * 4 * c, (float(a.alpha.detach()), c)
