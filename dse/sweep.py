"""``python -m dse.sweep``: the bandwidth x area sweep CLI; it lives in `dse.study.sweep`."""

from __future__ import annotations

from dse.cli import run_as_program
from dse.study.sweep import main

__all__ = ["main"]

if __name__ == "__main__":
    run_as_program(main)
