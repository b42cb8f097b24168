"""The negative-control accuracy benchmark (quant/benchmark.py, quant/benchmark_report.py,
benchmarks/accuracy_controls.py): statistics against closed forms, the quick mode end to end,
the cache and the command line's errors."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from quant import benchmark as bench
from quant.benchmark_report import summarize, write_report

ROOT = Path(__file__).resolve().parents[2]


def test_paired_t_test_one_degree_of_freedom_is_cauchy() -> None:
    # d = (1, 3): mean 2, s_d = sqrt(2), t = 2 / (sqrt(2) / sqrt(2)) = 2; T_1 is Cauchy:
    # P(T >= t) = 1/2 - atan(t) / pi
    r = bench.paired_t_test([1.0, 3.0], [0.0, 0.0])
    assert (r.n, r.mean_delta, r.sd_delta) == (2, 2.0, pytest.approx(math.sqrt(2)))
    assert r.t == pytest.approx(2.0)
    assert r.p_value == pytest.approx(0.5 - math.atan(2.0) / math.pi, rel=1e-10)


def test_paired_t_test_two_degrees_of_freedom_closed_form() -> None:
    # d = (1, 2, 3): mean 2, s_d = 1, t = 2 sqrt(3); T_2: P(T >= t) = 1/2 - t / (2 sqrt(2 + t^2))
    r = bench.paired_t_test([1.5, 2.5, 3.5], [0.5, 0.5, 0.5])
    t = 2 * math.sqrt(3)
    assert r.t == pytest.approx(t)
    assert r.p_value == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), rel=1e-10)
    # Wilcoxon exact: all three differences positive, P = 1 / 2^3
    assert r.p_wilcoxon == pytest.approx(1 / 8)


def test_paired_t_test_matches_scipy_and_is_one_sided() -> None:
    from scipy import stats

    ref = [0.97, 0.95, 0.99, 0.96, 0.98, 0.94]
    trt = [0.95, 0.96, 0.96, 0.93, 0.97, 0.94]
    r = bench.paired_t_test(ref, trt)
    assert r.p_value == pytest.approx(stats.ttest_rel(ref, trt, alternative="greater").pvalue)
    assert bench.paired_t_test(trt, ref).p_value == pytest.approx(1 - r.p_value)


def test_paired_t_test_degenerate_and_bad_input() -> None:
    assert bench.paired_t_test([1.0, 1.0], [0.5, 0.5]).p_value == 0.0  # sd 0, control worse
    same = bench.paired_t_test([1.0, 1.0], [1.0, 1.0])
    assert (same.p_value, same.p_wilcoxon) == (1.0, 1.0)
    with pytest.raises(ValueError, match="n=1 pairs"):
        bench.paired_t_test([1.0], [0.0])
    with pytest.raises(ValueError, match="differ in length"):
        bench.paired_t_test([1.0, 2.0], [0.0])


def test_holm_step_down() -> None:
    # sorted 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> monotone 0.06
    assert bench.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert bench.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_protocol_validation_and_key() -> None:
    with pytest.raises(ValueError, match=r"w_bits=8 \(allowed: int 2..4\)"):
        bench.Protocol(w_bits=8)
    with pytest.raises(ValueError, match="eval_split='train'"):
        bench.Protocol(eval_split="train")
    assert bench.Protocol().key() == bench.STANDARD.key() != bench.QUICK.key()
    assert bench.arms_for(["sawb_max_abs", "lsq_grad_scale_one", "pact_scale_in_graph"]) == [
        "fp32", "pact_sawb", "lsq", "sawb_max_abs", "lsq_grad_scale_one", "pact_scale_in_graph"]
    with pytest.raises(ValueError, match="control='x'"):
        bench.arms_for(["x"])


def test_quick_benchmark_end_to_end_and_resumes(tmp_path: Path) -> None:
    arms = bench.arms_for(["lsq_grad_scale_one"])
    seeds = [0, 1]
    messages: list[str] = []
    results = bench.run_benchmark(bench.QUICK, arms, seeds, tmp_path / "cache", jobs=1,
                                  progress=messages.append)
    assert set(results) == {(a, s) for a in arms for s in seeds}
    assert messages[0].startswith("0 of 6 runs cached")
    files = sorted((tmp_path / "cache" / bench.QUICK.key()).glob("*.json"))
    assert len(files) == 6
    stored = json.loads(files[0].read_text())
    assert stored["protocol"]["epochs"] == 1
    lsq = results[("lsq", 0)]
    assert lsq["curves"], "LSQ steps are learned 0-dim parameters"
    assert all(c["group"] == "scale" and c["decay_only"] == [c["start"]]
               for c in lsq["curves"].values())
    assert results[("lsq_grad_scale_one", 0)]["control"] == "lsq_grad_scale_one"
    # same seed, different formula: the controlled run really trained differently
    assert results[("lsq_grad_scale_one", 0)]["curves"] != lsq["curves"]

    again: list[str] = []
    bench.run_benchmark(bench.QUICK, arms, seeds, tmp_path / "cache", jobs=1,
                        progress=again.append)
    assert again == ["6 of 6 runs cached in " + str(tmp_path / "cache" / bench.QUICK.key())
                     + "; training 0"]

    ctrl, gaps = summarize(results, arms, seeds)
    assert [c.treated for c in ctrl] == ["lsq_grad_scale_one"]
    assert [g.treated for g in gaps] == ["lsq"]
    bench.record_invocation(tmp_path / "cache", bench.QUICK, wall_s=5.0, cpu_s=4.0, trained=6)
    history = bench.record_invocation(tmp_path / "cache", bench.QUICK, wall_s=1.0, cpu_s=1.0,
                                      trained=0)
    assert [h["trained"] for h in bench.invocations(tmp_path / "cache", bench.QUICK)] == [6, 0]
    md = write_report(results, bench.QUICK, arms, seeds, tmp_path / "out", command="test",
                      wall_s=1.0, cpu_s=1.0, train_cpu_s=2.0, jobs=1, invocations=history)
    text = md.read_text()
    assert "Invocations that trained runs for this protocol: 1, 5 s wall and 4 s CPU" in text
    assert "| `lsq_grad_scale_one`: LSQ step gradient without its scale (g = 1)" in text
    assert "## W2A2 against full precision" in text
    for name in ("controls_runs.csv", "controls_trajectories.png", "controls_trajectories.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert len((tmp_path / "out" / "controls_runs.csv").read_text().splitlines()) == 7

    # the command line's --quick mode is this protocol: it finds every run cached
    assert _cli().main(["--quick", "--seeds", "2", "--jobs", "1", "--controls",
                        "lsq_grad_scale_one", "--out", str(tmp_path / "cli"),
                        "--cache", str(tmp_path / "cache")]) == 0
    text = (tmp_path / "cli" / "controls.md").read_text()
    assert "controls at p < 0.05 on the test cross-entropy**" in text
    assert "The primary measure is the cross-entropy" in text
    assert bench.invocations(tmp_path / "cache", bench.QUICK)[-1]["trained"] == 0


def test_paper_init_fine_tunes_lsq_from_the_seeds_fp32_and_shares_scratch_runs(
        tmp_path: Path) -> None:
    import dataclasses

    import torch

    from quant.procedure import DIGITS_FP_LR, DIGITS_FT_LR

    cache = tmp_path / "cache"
    arms = bench.arms_for(["lsq_init_factor_one", "sawb_max_abs"])
    scratch = bench.run_benchmark(bench.QUICK, arms, [0], cache, jobs=1)
    paper = dataclasses.replace(bench.QUICK, init="paper")
    assert paper.key() != bench.QUICK.key()
    assert [paper.fine_tunes(a) for a in arms] == [False, True, False, True, False]
    fp_weights = cache / bench.QUICK.key() / "fp32-s0.pt"
    fp_weights.unlink()  # as a cache from before weights were stored
    messages: list[str] = []
    results = bench.run_benchmark(paper, arms, [0], cache, jobs=1, progress=messages.append)
    # fp32 was cached without its weights: trained again, then the two LSQ arms fine-tune
    # from them; the PACT-SAWB arms are the scratch protocol's runs, reused.
    assert messages[0].endswith("training 3"), messages[0]
    assert [m.split(":")[0] for m in messages[1:]] == [
        "[1/3] fp32 seed 0", "[2/3] lsq seed 0", "[3/3] lsq_init_factor_one seed 0"]
    for arm in ("pact_sawb", "sawb_max_abs"):
        assert results[(arm, 0)] == scratch[(arm, 0)]
    assert {"features.0.weight", "fc.weight"} <= set(torch.load(fp_weights, weights_only=True))
    lsq, lsq_scratch = results[("lsq", 0)], scratch[("lsq", 0)]
    assert (lsq["init"], lsq["lr"]) == ("fp32", DIGITS_FT_LR)
    assert (lsq_scratch["init"], lsq_scratch["lr"]) == ("scratch", DIGITS_FP_LR)
    # LSQ's step starts at 2<|w|>/sqrt(Q_P) of the weights it starts from: the FP weights
    start = {n: c["start"] for n, c in lsq["curves"].items()}
    assert start != {n: c["start"] for n, c in lsq_scratch["curves"].items()}
    assert json.loads((cache / paper.key() / "lsq-s0.json").read_text())["protocol"]["init"] == (
        "paper")
    with pytest.raises(ValueError, match=r"init='fp' \(allowed: scratch, paper\)"):
        bench.Protocol(init="fp")


def test_the_primary_measure_decides_detection_and_holm() -> None:
    # Synthetic results: the control's cross-entropy is higher on every seed, its accuracy is
    # the same as the correct recipe's (a calibration-only effect, like CReLU's Eq. 10).
    seeds = list(range(6))
    arms = bench.arms_for(["crelu_backward_detached"])
    results = {}
    for s in seeds:
        results[("fp32", s)] = {"accuracy": 0.99, "loss": 0.05}
        results[("crelu_binary", s)] = {"accuracy": 0.95 + 0.001 * s, "loss": 0.20 + 0.01 * s}
        results[("crelu_backward_detached", s)] = {"accuracy": 0.95 + 0.001 * ((s + 3) % 6),
                                                   "loss": 0.25 + 0.01 * s + 0.002 * (s % 2)}
    on_loss, _ = summarize(results, arms, seeds)  # the default: the cross-entropy
    on_acc, gaps = summarize(results, arms, seeds, "accuracy")
    assert on_loss[0].detected
    assert not on_acc[0].detected
    assert on_loss[0].p_holm == on_loss[0].loss_test.p_value  # one test: Holm = raw p
    assert on_acc[0].p_holm == on_acc[0].test.p_value
    assert gaps[0].measure == "accuracy"
    assert gaps[0].detected
    with pytest.raises(ValueError, match=r"measure='ce' \(allowed: loss, accuracy\)"):
        summarize(results, arms, seeds, "ce")


def test_a_diverged_run_scores_as_a_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    from quant import train as qtrain

    def diverge(*_args: object, **_kwargs: object) -> None:
        raise FloatingPointError("loss is nan at epoch 0 step 3")

    monkeypatch.setattr(qtrain, "train", diverge)
    r = bench.run_arm("sawb_max_abs", 0, bench.QUICK)
    assert (r["accuracy"], r["loss"]) == (0.1, pytest.approx(math.log(10)))
    assert r["diverged"] == "loss is nan at epoch 0 step 3"
    assert (r["recipe"], r["control"]) == ("pact_sawb", "sawb_max_abs")


def test_foreign_cache_file_is_retrained(tmp_path: Path) -> None:
    path = tmp_path / bench.QUICK.key() / "fp32-s0.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert bench.load_results(tmp_path, bench.QUICK, ["fp32"], [0]) == {}


def _cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "accuracy_controls", ROOT / "benchmarks" / "accuracy_controls.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "1"], "error: --seeds=1 (allowed: >= 2"),
    (["--controls", "lsq_grad_scale_one,bogus"], "error: --controls='lsq_grad_scale_one,bogus'"),
    (["--split", "train"], "error: --split='train' (allowed: test, val)"),
    (["--epochs", "0"], "error: --epochs: invalid benchmark protocol: epochs=0"),
    (["--jobs", "x"], "error: argument --jobs: invalid int value: 'x'"),
    (["--measure", "ce"], "error: --measure='ce' (allowed: loss, accuracy)"),
    (["--init", "fp"], "error: --init: invalid benchmark protocol: init='fp' (allowed: scratch, "
                       "paper)"),
    (["--first-seed", "-1"], "error: --first-seed=-1 (allowed: >= 0)"),
])
def test_cli_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    cli = _cli()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--out", str(out), "--cache", str(cache), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert not cache.exists()


def test_cli_as_a_script_exits_2_on_a_file_as_out(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "accuracy_controls.py"),
                           "--out", str(tmp_path / "f"), "--cache", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --out=")
    assert "is a file" in proc.stderr
    assert not (tmp_path / "c").exists()
