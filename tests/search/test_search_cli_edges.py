"""dse.search edge inputs found by a robustness sweep of the CLIs: a micro-batch that does not
divide the batch (each trial failed inside the simulator, the run exited 0 with 'no feasible
design'), and --bits naming its two fields twice in one error line."""

from __future__ import annotations

import pytest

from dse.search.cli import main
from dse.search.problem import problem_errors
from dse.search.space import SearchSpace


def test_a_micro_batch_that_does_not_divide_the_batch_is_a_problem():
    space = SearchSpace(schedules=("pipeline",), groups=(2,), micro_batches=(1, 3))
    errors = problem_errors(space, ["images_per_s"], 14.0, batch=4)
    assert any(e.startswith("micro_batches=(1, 3) is not allowed with batch=4") for e in errors)
    assert not problem_errors(space, ["images_per_s"], 14.0, batch=6)


@pytest.mark.parametrize(("args", "field"), [
    (["--micro-batches", "3", "--batch", "4", "--schedules", "pipeline"], "micro_batches="),
    (["--bits", "0"], "--bits=(0,)"),
])
def test_cli_rejects_before_extraction_with_one_complaint(tmp_path, capsys, monkeypatch, args,
                                                          field):
    import dse.search.cli

    def no_extraction(*_a, **_k):
        raise AssertionError("bad input must be rejected before the workload is extracted")

    monkeypatch.setattr(dse.search.cli, "prepare_workload", no_extraction)
    out = tmp_path / "o"
    assert main(["--model", "alexnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "1", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")
    assert err[0].count(field) == 1, err[0]
    assert not out.exists()
