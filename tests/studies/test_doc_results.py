"""The results blocks in README.md and docs/ are what the studies compute now.

Every `<!-- qdse:results NAME -->` block is rewritten by `python -m dse.study NAME --update-doc
FILE`; this test reruns each study that has a block (default parameters, as the command does) and
fails when a block no longer matches, naming the command that brings it back in step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import studies
from dse.study import doc_digest, main
from dse.study.report import Summary, Target, doc_block, sync_doc
from dse.study.runner import run_study

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IMAGES = ROOT / "docs" / "studies"


def _blocks() -> list[tuple[str, Path]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found += [(name, doc) for name in studies.names() if doc_block(text, name) is not None]
    return found


BLOCKS = _blocks()


def test_the_readme_shows_the_main_study() -> None:
    assert ("wrpn_vs_pact", ROOT / "README.md") in BLOCKS


@pytest.fixture(scope="module")
def summaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Summary]:
    out = tmp_path_factory.mktemp("doc_results")
    runs = {}
    for name in sorted({n for n, _ in BLOCKS}):
        run = run_study(studies.get(name), out=out / name, formats=("csv",))
        assert run.summary is not None
        runs[name] = run.summary
    return runs


@pytest.mark.parametrize(("name", "doc"), BLOCKS,
                         ids=[f"{n}-{d.relative_to(ROOT)}" for n, d in BLOCKS])
def test_doc_block_matches_a_fresh_run(name: str, doc: Path,
                                       summaries: dict[str, Summary]) -> None:
    block, flags = doc_block(doc.read_text(encoding="utf-8"), name)
    want = doc_digest(name, summaries[name], doc, IMAGES, flags)
    rel = doc.relative_to(ROOT)
    assert block == want, (f"{rel} shows stale {name} results; run `python -m dse.study {name} "
                           f"--update-doc {rel}`")
    for f in summaries[name].headline:
        if f.endswith(".png"):
            assert (IMAGES / f"{name}_{f}").is_file(), f"{name}'s plot {f} is not in {IMAGES}"


def test_sync_doc_rewrites_only_its_block(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- qdse:results a +notes -->\nold\n<!-- /qdse:results a -->\n"
                   "<!-- qdse:results b -->\nkeep\n<!-- /qdse:results b -->\nend\n")
    seen = []
    sync_doc(doc, "a", lambda flags: seen.append(flags) or "new 1\nnew 2\n")
    text = doc.read_text()
    assert seen == [("+notes",)]
    assert doc_block(text, "a") == ("new 1\nnew 2\n", ("+notes",))
    assert doc_block(text, "b") == ("keep\n", ())
    assert text.startswith("intro\n")
    assert text.endswith("end\n")
    with pytest.raises(ValueError, match="has no block for study 'c'"):
        sync_doc(doc, "c", lambda flags: "")
    doc.write_text("<!-- qdse:results a +bogus -->\n<!-- /qdse:results a -->\n")
    with pytest.raises(ValueError, match="allowed: \\+notes"):
        sync_doc(doc, "a", lambda flags: "")


def test_digest_has_no_timings_and_marks_misses() -> None:
    from dse.study.report import digest

    s = Summary(title="T", targets=(Target("x", 5.0, 1.0, 2.0, paper="1.5", source="p"),),
                notes="why\n## sub")
    text = digest(s, "demo", notes=True)
    assert "0 of 1 targets inside their band" in text
    assert "MISSED" in text
    assert "#### sub" in text  # notes' headings sit below the document's own
    assert " s)" not in text
    assert "elapsed" not in text


def test_update_doc_without_a_block_fails_before_running(tmp_path: Path, capsys) -> None:
    doc = tmp_path / "plain.md"
    doc.write_text("no markers here\n")
    assert main(["mac_area", "--out", str(tmp_path / "r"), "--quiet",
                 "--update-doc", str(doc)]) == 2
    assert "has no block for study 'mac_area'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.csv").exists()
