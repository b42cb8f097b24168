"""Results blocks in markdown documents: ``<!-- qdse:results NAME [+flags] -->`` ...
``<!-- /qdse:results NAME -->``, found (`doc_block`, `check_doc`) and rewritten (`sync_doc`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from dse.study.atomic import atomic_write_text

__all__ = ["DOC_FLAGS", "check_doc", "doc_block", "sync_doc"]


DOC_FLAGS = ("+notes",)
"""Options a results marker may carry: ``<!-- qdse:results NAME +notes -->``."""


def doc_block(text: str, study: str) -> tuple[str, tuple[str, ...]] | None:
    """The text between study ``study``'s result markers in a document and the flags of its
    opening marker; None when the document has no block for it."""
    span = _block_span(text, study)
    if span is None:
        return None
    i, j, flags = span
    return text[i:j].strip("\n") + "\n", flags


def _block_span(text: str, study: str) -> tuple[int, int, tuple[str, ...]] | None:
    m = re.search(rf"<!-- qdse:results {re.escape(study)}((?: \+\w+)*) -->", text)
    end = text.find(f"<!-- /qdse:results {study} -->", m.end()) if m else -1
    if m is None or end < 0:
        return None
    flags = tuple(m.group(1).split())
    bad = [f for f in flags if f not in DOC_FLAGS]
    if bad:
        raise ValueError(f"results marker of {study!r} has flags {bad}; allowed: "
                         f"{', '.join(DOC_FLAGS)}")
    return m.end(), end, flags


def check_doc(path: str | Path, study: str) -> tuple[str, int, int, tuple[str, ...]]:
    """The text of markdown file ``path`` and the span and flags of study ``study``'s results
    block; ValueError if the file cannot be read or has no such block (a document opts in by
    holding the markers)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"--update-doc={str(path)!r} cannot be read ({e.strerror or e})"
                         ) from None
    span = _block_span(text, study)
    if span is None:
        raise ValueError(f"--update-doc={str(path)!r} has no block for study {study!r}; add the "
                         f"lines '<!-- qdse:results {study} -->' and "
                         f"'<!-- /qdse:results {study} -->' where its results belong")
    return (text, *span)


def sync_doc(path: str | Path, study: str, render: Callable[[tuple[str, ...]], str]) -> Path:
    """Replace the text between ``<!-- qdse:results STUDY [+flags] -->`` and ``<!-- /qdse:results
    STUDY -->`` in the markdown file ``path`` with ``render(flags)`` (atomically); errors as
    `check_doc`."""
    text, i, j, flags = check_doc(path, study)
    block = render(flags)
    return atomic_write_text(path, text[:i] + "\n" + block.rstrip("\n") + "\n" + text[j:])
