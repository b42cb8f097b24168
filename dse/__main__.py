"""``python -m dse COMMAND ...`` (the ``qdse`` console script): one entry point for the CLIs."""

from __future__ import annotations

from dse.cli import qdse, run_as_program

if __name__ == "__main__":
    run_as_program(qdse)
