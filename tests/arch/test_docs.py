"""docs/arch.md quotes model outputs; keep them in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from arch import presets
from arch.__main__ import _iso_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "arch.md"


@pytest.mark.skipif(not DOC.exists(), reason="docs/arch.md not present (merged elsewhere)")
def test_iso_area_table_in_docs_matches_model() -> None:
    table = _iso_table([16, 8, 4, 2, (2, 4)], 32.0, presets.SYSML19_TOTAL_SRAM_KIB)
    assert table in DOC.read_text(encoding="utf-8")


@pytest.mark.skipif(not DOC.exists(), reason="docs/arch.md not present (merged elsewhere)")
def test_llsq_table_in_docs_matches_model() -> None:
    text = DOC.read_text(encoding="utf-8")
    base = presets.llsq40nm(8).area
    for b in (8, 4, 2):
        acc = presets.llsq40nm(b)
        ratio = acc.area / base
        ratio_text = "1" if b == 8 else f"{ratio:.3f}"
        assert f"| {b} | {acc.area:.2f} |" in text
        assert f"| {ratio_text} |" in text
