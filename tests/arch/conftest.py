"""Shared fixtures for the arch tests."""

from __future__ import annotations

import pytest

from arch import Accelerator


@pytest.fixture
def tiny() -> Accelerator:
    """A small, valid accelerator: 2 cores of 4x4 4-bit MACs, 64 KiB each."""
    return Accelerator(cores=2, rows=4, cols=4, mac_bits=(4, 4), freq_ghz=1.0, sram_kib=64.0,
                       dram_gbps=8.0, name="tiny")
