"""`dse.cli.run_cli`, the contract every command line shares: Ctrl-C is one line and exit 130
even when a library's cleanup turns the KeyboardInterrupt into another exception."""

from __future__ import annotations

import pytest

from dse.cli import EXIT_INTERRUPTED, run_cli


def _optuna_like_trial_loop() -> int:
    """Optuna's `_run_trial`: a ``finally`` reads a name the interrupted ``tell`` never set."""
    try:
        updated_state = _interrupted_tell()
    finally:
        if updated_state == "COMPLETE":  # unbound after the interrupt, as in Optuna
            pass
    return 0


def _interrupted_tell() -> str:
    raise KeyboardInterrupt


def test_an_interrupt_a_cleanup_turned_into_another_error_is_still_an_interrupt(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C during a search's journal append, re-raised inside Optuna's tell, surfaced as
    # UnboundLocalError: the search exited 1 with a traceback (CI, once) instead of 130
    with pytest.raises(UnboundLocalError):
        _optuna_like_trial_loop()
    assert run_cli(_optuna_like_trial_loop, [], interrupted="interrupted: x") == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted: x"


def test_an_error_with_no_interrupt_behind_it_is_not_one(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    def body() -> int:
        raise ValueError("w_bits=0 is not allowed")

    assert run_cli(body, [], interrupted="interrupted: x") == 2
    assert capsys.readouterr().err.strip() == "error: w_bits=0 is not allowed"

    def broken() -> int:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run_cli(broken, [], interrupted="interrupted: x")
