"""Shared fixtures for the quant tests: tiny float models with the zoo's naming conventions."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyBlock(nn.Module):
    """A ResNet basic block with a projection shortcut at ``.shortcut`` (zoo naming)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(y)) + self.shortcut(x))


class TinyResNet(nn.Module):
    """conv1 -> 2 blocks (the second with a shortcut conv) -> pool -> fc; 8x8 RGB input."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(TinyBlock(8, 8, 1), TinyBlock(8, 16, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(y), 1))


@pytest.fixture
def tiny_resnet() -> nn.Module:
    torch.manual_seed(0)
    return TinyResNet()


@pytest.fixture
def image_batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 8, 8, generator=g)


# The machine is shared and has two cores: one intra-op thread avoids oversubscription, which
# made small CPU trainings here ~50x slower.
torch.set_num_threads(1)
