"""Fixtures for workloads tests (the helpers they share are in `wlkit`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture
def tiny_residual() -> nn.Module:
    """conv -> BN -> ReLU -> [conv -> BN -> ReLU -> conv] + 1x1 projection -> add -> pool -> fc."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
            self.shortcut = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False),
                                          nn.BatchNorm2d(16))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.relu(self.bn(self.stem(x)))
            y = self.conv2(self.relu1(self.bn1(self.conv1(x))))
            y = y + self.shortcut(x)
            return self.fc(torch.flatten(self.pool(y), 1))

    return Block()
