"""Fixtures for the search tests (helpers in searchkit.py, importable by test modules)."""

from __future__ import annotations

import pytest
from searchkit import tiny_proxy, tiny_resnet

from dse.search.accuracy import ProxyAccuracy
from workloads.graph import Workload


@pytest.fixture
def tiny_workload() -> Workload:
    return tiny_resnet()


@pytest.fixture
def tiny_accuracy(tiny_workload: Workload) -> ProxyAccuracy:
    return tiny_proxy(tiny_workload)
