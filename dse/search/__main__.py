"""``python -m dse.search [worker] ...`` (see `dse.search.cli`)."""

from __future__ import annotations

from dse.cli import run_as_program
from dse.search.cli import main

if __name__ == "__main__":
    run_as_program(main)
