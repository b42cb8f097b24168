"""Fixtures for the simulator tests (builders live in test_sim_helpers.py)."""

from __future__ import annotations

import pytest

from arch.spec import Accelerator


@pytest.fixture
def tiny_acc() -> Accelerator:
    return Accelerator(cores=2, rows=4, cols=4, mac_bits=(8, 8), freq_ghz=1.0, sram_kib=4.0,
                       dram_gbps=1.0, dram_latency_ns=0.0, dram_burst_bytes=1, name="tiny")
