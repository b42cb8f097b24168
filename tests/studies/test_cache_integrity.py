"""A study's point cache under corruption (issue 12): a torn entry or one whose numbers were edited
is recomputed with a warning, never reused silently."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import ModuleType

import pytest

from dse.study.runner import run_study


def _entries(out: Path) -> list[Path]:
    return sorted((out / ".cache" / "fake_study").glob("*.json"))


def _calls(out: Path) -> list[str]:
    log = out / ".cache" / "artefacts" / "calls.log"
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("damage", ["edited number", "torn", "no checksum", "not a mapping"])
def test_a_damaged_entry_is_recomputed_with_a_warning(fake_study: ModuleType, tmp_path: Path,
                                                      damage: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    first = run_study(fake_study, out=tmp_path, report=False).results
    entry = _entries(tmp_path)[2]
    doc = json.loads(entry.read_text())
    whole = entry.read_text()
    if damage == "edited number":  # still valid JSON: only the checksum tells
        doc["rows"][0]["value"] += 1.0
        entry.write_text(json.dumps(doc))
    elif damage == "torn":
        entry.write_bytes(entry.read_bytes()[:-9])
    elif damage == "no checksum":  # an entry of an older runner, or a hand-made one
        del doc["rows_sha256"]
        entry.write_text(json.dumps(doc))
    else:
        entry.write_text("[1, 2]")
    n_calls = len(_calls(tmp_path))
    with caplog.at_level(logging.WARNING, logger="dse.study.runner"):
        run = run_study(fake_study, out=tmp_path, report=False)
    assert str(entry) in caplog.text
    assert "recomputing its design point" in caplog.text
    assert (run.info.cached, run.info.computed) == (len(first) // 2 - 1, 1)
    assert len(_calls(tmp_path)) == n_calls + 1
    assert run.results.equals(first)  # the recomputed point, not the edited one
    again = json.loads(entry.read_text())  # rewritten whole, with its checksum
    assert (again["rows"], again["rows_sha256"]) == (json.loads(whole)["rows"],
                                                     json.loads(whole)["rows_sha256"])


def test_whole_entries_are_reused_silently(fake_study: ModuleType, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    run_study(fake_study, out=tmp_path, report=False)
    with caplog.at_level(logging.WARNING, logger="dse.study.runner"):
        run = run_study(fake_study, out=tmp_path, report=False)
    assert run.info.computed == 0
    assert caplog.text == ""
