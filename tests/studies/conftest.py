from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # fake_study.py must import by name (also in spawned workers)
    sys.path.insert(0, _HERE)


@pytest.fixture
def fake_study():
    import fake_study

    return fake_study
