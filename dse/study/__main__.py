"""``python -m dse.study``: see `dse.study.cli`."""

from __future__ import annotations

from dse.cli import run_as_program
from dse.study.cli import main

if __name__ == "__main__":
    run_as_program(main)
