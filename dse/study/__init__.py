"""The study runner: ``python -m dse.study NAME`` runs a study of `studies/` (`dse.study.cli`), with
cached, resumable, parallel design points (`dse.study.runner`) and atomic reports
(`dse.study.report`); ``python -m dse.sweep`` sweeps bandwidth x area (`dse.study.sweep`)."""

from __future__ import annotations

from dse.study.cli import (
    doc_digest,
    main,
    parse_bandwidths,
    parse_value,
    run_study_cli,
    update_docs,
)

__all__ = ["doc_digest", "main", "parse_bandwidths", "parse_value", "run_study_cli", "update_docs"]
