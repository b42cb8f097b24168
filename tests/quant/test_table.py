"""quant.table on a tiny subset: the CSV columns, FP reference, resumability, CLI errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from quant import table as qtable
from quant import train as qtrain
from quant.table_runs import _untrained_layers
from quant.train_loop import _layer_bits


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread: bit-identical to the table's worker processes, and fast on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = ["--fp-epochs", "1", "--ft-epochs", "1", "--bits", "4", "--no-checks", "--seeds", "0",
        "--jobs", "1"]


def test_plan_has_fp_once_and_every_recipe_per_bit_width() -> None:
    rows = qtable.plan(["fp32", "pact", "lsq"], [4, 2])
    assert [(r.recipe, r.w_bits, r.a_bits) for r in rows] == [
        ("fp32", 32, 32), ("pact", 4, 4), ("lsq", 4, 4), ("pact", 2, 2), ("lsq", 2, 2)]


def test_tiny_table_writes_csv_and_markdown_and_resumes(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path), "--recipes", "fp32,pact_sawb", *TINY]
    assert qtable.main(argv) == 0
    df = pd.read_csv(tmp_path / "accuracy.csv")
    assert list(df.columns[:5]) == ["recipe", "w_bits", "a_bits", "accuracy", "fp_accuracy"]
    assert df[["recipe", "w_bits", "a_bits"]].values.tolist() == [
        ["fp32", 32, 32], ["pact_sawb", 4, 4]]
    # Each accuracy is its run's measured test accuracy; fp_accuracy is the FP row's.
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 2
    for (_, r), (_, run) in zip(df.iterrows(), runs.iterrows()):
        m = json.loads((tmp_path / run["run"] / qtrain.METRICS).read_text())
        assert r["accuracy"] == pytest.approx(m["test_accuracy"], abs=1e-6)
        assert (m["recipe"], m["w_bits"], m["a_bits"]) == (r["recipe"], r["w_bits"], r["a_bits"])
        assert r["seeds"] == 1
    assert (df["fp_accuracy"] == df.loc[0, "accuracy"]).all()
    assert df["delta_pts"].tolist() == pytest.approx(  # CSV keeps 6 significant digits
        (100 * (df["accuracy"] - df["fp_accuracy"])).tolist(), abs=1e-3)
    assert 0.1 < df.loc[0, "accuracy"] <= 1.0  # one FP epoch on digits is well above chance
    assert df[["body_w_bits", "body_a_bits"]].values.tolist() == [[32, 32], [4, 4]]
    assert not any(str(r).startswith("/") for r in runs["run"])  # relative to the out folder
    md = (tmp_path / "accuracy.md").read_text()
    assert "| pact_sawb | W4A4 | W4A4 |" in md
    assert "pact_sawb W4A4 within 3 points" in md
    assert "Command: `python -m quant.table --out" in md
    # Rerun: every run folder is reloaded, nothing retrained, same table.
    ckpts = sorted((tmp_path / "runs").glob("*/checkpoint.pt"))
    stamps = [p.stat().st_mtime_ns for p in ckpts]
    assert qtable.main(argv) == 0
    assert [p.stat().st_mtime_ns for p in ckpts] == stamps
    again = pd.read_csv(tmp_path / "accuracy.csv")
    pd.testing.assert_frame_equal(df, again)


def test_two_jobs_two_seeds_match_in_process_runs(tmp_path: Path) -> None:
    """Runs are deterministic per (seed, threads), so the process layout cannot change numbers."""
    rows = qtable.plan(["fp32", "pact_sawb"], [4])
    par = qtable.build_table(tmp_path / "a", rows, jobs=2, seeds=[0, 1], fp_epochs=1,
                             ft_epochs=1)
    assert par[["recipe", "seed"]].values.tolist() == [
        ["fp32", 0], ["fp32", 1], ["pact_sawb", 0], ["pact_sawb", 1]]
    here = qtrain.trained_digits_result("pact_sawb", 4, 4, tmp_path / "b", seed=1, fp_epochs=1,
                                        ft_epochs=1)
    assert par.loc[3, "accuracy"] == here.test_accuracy
    summary = qtable.summarize(par)
    assert summary["seeds"].tolist() == [2, 2]
    pact = par.loc[par["recipe"] == "pact_sawb", "accuracy"]
    assert summary.loc[1, "accuracy"] == pytest.approx(pact.mean())
    assert summary.loc[1, "accuracy_std"] == pytest.approx(pact.std())
    fp = par.loc[par["recipe"] == "fp32", "accuracy"].mean()
    assert summary["fp_accuracy"].tolist() == pytest.approx([fp, fp])


def test_check_verdicts_follow_the_accuracies(tmp_path: Path) -> None:
    """The markdown verdict is computed from the numbers (here fabricated runs)."""
    claim, rows = next((c, r) for c, r in qtable.CHECKS.items() if c.startswith("rises: "))
    text = claim.removeprefix("rises: ")
    best_claim, best_rows = next((c, r) for c, r in qtable.CHECKS.items()
                                 if c.startswith("best: "))
    main = qtable.plan(["fp32"], [4])

    def runs(accs: list[float]) -> pd.DataFrame:
        recs = [{"recipe": "fp32", "w_bits": 32, "a_bits": 32, "seed": 0, "accuracy": 0.9}]
        recs += [{"recipe": r.name, "w_bits": r.w_bits, "a_bits": r.a_bits, "seed": 0,
                  "accuracy": a} for r, a in zip(rows + best_rows, accs)]
        df = pd.DataFrame(recs)
        return df.assign(epochs=1, width=1, time_s=0.0, cpu_s=0.0, error="", run="",
                         init="fp", body_w_bits=df["w_bits"], body_a_bits=df["a_bits"])

    best_text = best_claim.removeprefix("best: ")
    qtable.write_table(tmp_path, runs([0.5, 0.6, 0.7, 0.6, 0.5, 0.7]), main_rows=main)
    md = (tmp_path / "accuracy.md").read_text()
    assert f"{text}: holds" in md
    assert f"{best_text}: holds" in md  # the winner beats both, in any order of the others
    qtable.write_table(tmp_path, runs([0.5, 0.8, 0.7, 0.6, 0.8, 0.7]), main_rows=main)
    md = (tmp_path / "accuracy.md").read_text()
    assert f"{text}: does not hold" in md
    assert f"{best_text}: does not hold" in md
    assert len(pd.read_csv(tmp_path / "checks.csv")) == len(rows) + len(best_rows)


@pytest.mark.parametrize("argv", [
    ["--recipes", "fp32,nope"], ["--bits", "0"], ["--bits", "x"], ["--jobs", "0"],
    ["--seeds", ""], ["--threads", "0"]])
def test_cli_bad_arguments_exit_2(argv: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        qtable.main(["--out", str(tmp_path), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert not (tmp_path / "accuracy.csv").exists()


def _layers(recipe: str, bits: int, **kwargs: object) -> list[dict[str, object]]:
    """metrics["layers"] of digits_cnn under ``recipe`` (what quant.train records)."""
    from quant import quantize
    from workloads import zoo

    return _layer_bits(quantize(zoo.get("digits_cnn"), recipe, bits, bits, **kwargs))


@pytest.mark.parametrize(("recipe", "bits", "body"), [
    ("fp32", 32, (32, 32)),
    ("pact", 4, (32, 4)),  # PACT activations only: weights stay full precision
    ("sawb", 2, (2, 32)),  # SAWB weights only: activations stay full precision
    ("pact_sawb", 2, (2, 2)),
    ("lsq", 4, (4, 4)),  # input-site quantizers; first/last 8-bit are not the body
    ("llsqf", 2, (2, 2)),
    ("wrpn", 2, (2, 2)),
    ("crelu_binary", 3, (3, 3)),
])
def test_body_bits_are_read_from_the_quantized_model(recipe: str, bits: int,
                                                     body: tuple[int, int]) -> None:
    assert qtable.body_bits(_layers(recipe, bits)) == body


def test_body_bits_see_overrides_inside_the_body() -> None:
    """A body layer left in full precision makes the body's widest precision 32."""
    assert qtable.body_bits(_layers("pact_sawb", 2, overrides={"features.3": 32})) == (32, 2)
    assert qtable.body_bits(_layers("pact_sawb", 2, first_last_bits=8)) == (2, 2)
    with pytest.raises(ValueError, match="no conv/linear"):
        qtable.body_bits([{"name": "a", "type": "QuantAct", "weight_bits": None, "act_bits": 2}])


def test_targets_are_judged_on_the_real_precision(tmp_path: Path) -> None:
    """pact asked for W4A4 is W32A4: the W4A4 target is not judged on it, whatever its score."""
    recs = [("fp32", 32, 32, 32, 32, 0.99), ("pact", 4, 4, 32, 4, 0.985),
            ("lsq", 4, 4, 4, 4, 0.90), ("pact_sawb_fpsc", 2, 2, 2, 2, 0.97)]
    runs = pd.DataFrame([{"recipe": r, "w_bits": w, "a_bits": a, "body_w_bits": bw,
                          "body_a_bits": ba, "seed": 0, "accuracy": acc}
                         for r, w, a, bw, ba, acc in recs])
    runs = runs.assign(epochs=1, width=1, time_s=0.0, cpu_s=0.0, error="", run="", init="fp")
    main = qtable.plan(["fp32", "pact", "lsq", "pact_sawb_fpsc"], [4, 2])
    qtable.write_table(tmp_path, runs, main_rows=main)
    md = (tmp_path / "accuracy.md").read_text()
    assert "- pact asked for W4A4: not judged, its body is really W32A4 (-0.50 points" in md
    assert "| pact | W4A4 | **W32A4** |" in md
    assert "- lsq W4A4 within 3 points of FP: NOT met (-9.00)" in md
    assert "- pact_sawb_fpsc W2A2 within 5 points of FP: met (-2.00)" in md
    csv = pd.read_csv(tmp_path / "accuracy.csv")
    assert list(csv.columns[:7]) == ["recipe", "w_bits", "a_bits", "accuracy", "fp_accuracy",
                                     "body_w_bits", "body_a_bits"]


def test_a_diverged_run_still_reports_its_body_bits() -> None:
    """A run that diverged wrote no metrics.json; its bits come from the model it would train."""
    layers = _untrained_layers(qtable.Row("wrpn", 2, 4))
    assert qtable.body_bits(layers) == (2, 4)
    assert qtable.body_bits(_untrained_layers(qtable.Row("sawb", 2, 2))) == (2, 32)
