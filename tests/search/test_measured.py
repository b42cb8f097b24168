"""Measured accuracy: the digits-trained model evaluated under per-layer bits (trains briefly)."""

from __future__ import annotations

import json

import pytest

from dse.search.accuracy import (
    apply_bits_to_model,
    digits_measured_accuracy,
    from_dict,
    input_act_modules,
)


@pytest.mark.slow
def test_measured_accuracy_matches_trainer_and_reacts_to_bits(tmp_path):
    from quant.train import trained_digits_result
    from workloads import extract, zoo

    kw = {"fp_epochs": 1, "ft_epochs": 1}
    runs = str(tmp_path / "runs")
    m = digits_measured_accuracy("pact_sawb", 2, 2, runs, cache_path=str(tmp_path / "m.json"),
                                 train_kw=kw)
    assert m.label.startswith("measured:")
    trained = trained_digits_result("pact_sawb", 2, 2, runs, **kw)  # cached: same run
    work = extract(trained.model, input_shape=tuple(zoo.input_shape("digits_cnn")),
                   name="digits_cnn")
    same = {la.name: (la.w_bits, la.a_bits) for la in work.compute_layers()}
    # identity: the trial's bits == the trained bits -> exactly the trainer's own test accuracy
    assert m(same) == pytest.approx(trained.metrics["test_accuracy"], abs=1e-9)
    # 1-bit weights on the quantized body: a different function, a different score
    body = [la.name for la in work.compute_layers() if la.role not in ("first", "last")]
    assert body
    low = dict(same, **{n: (1, same[n][1]) for n in body})
    assert 0.0 <= m(low) <= 1.0
    assert len(json.loads((tmp_path / "m.json").read_text())) == 2
    # every quantized layer's activation bits reach a quantizer (its own or the QuantAct
    # feeding it): set a=3 everywhere and read the bits back through the bits protocol
    layer_modules = {la.name: la.module for la in work.compute_layers()}
    feeders = input_act_modules(trained.model, layer_modules)
    import copy

    model = copy.deepcopy(trained.model)
    apply_bits_to_model(model, {n: (same[n][0], 3) for n in body}, layer_modules, feeders)
    mods = dict(model.named_modules())
    for n in body:
        layer = mods[layer_modules[n]]
        qs = [mods[a] for a in feeders[n]] + ([layer] if layer.input_quantizer is not None else [])
        assert qs, f"no activation quantizer found for {n}"
        assert all(q.act_bits == 3 for q in qs)
    # rebuilt from what a study stores, it answers from the shared cache file
    again = from_dict(m.to_dict(), work)
    assert again(same) == pytest.approx(m(same), abs=1e-12)
