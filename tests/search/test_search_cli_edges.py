"""dse.search edge inputs found by a robustness sweep of the CLIs: a micro-batch that does not
divide the batch (each trial choosing it failed inside the simulator - the API's documented
behaviour, tests/search/test_search_schedules.py - so --micro-batches 3 --batch 4 ran a 20 s
extraction and exited 0 with 'no feasible design'), and --bits naming its two fields twice in
one error line."""

from __future__ import annotations

import pytest

from dse.search.cli import main


@pytest.mark.parametrize(("args", "field"), [
    (["--micro-batches", "1,3", "--batch", "4", "--schedules", "pipeline"],
     "--micro-batches='1,3' is not allowed with --batch=4: 3 does not divide it"),
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
