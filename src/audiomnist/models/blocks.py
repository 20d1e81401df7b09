"""Building blocks shared by the networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class ResBlock(nn.Module):
    """Two convolutions (BatchNorm, ReLU) with a residual, over 1-D or 2-D maps; the first may stride and change
    channels, and then the shortcut is a strided 1x1 convolution with BatchNorm (and a ReLU where the design has
    one, as TC-ResNet's does)."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int, kernel: int = 3, shortcut_relu: bool = False):
        super().__init__()
        conv, norm, pad = CONV[dims], NORM[dims], kernel // 2
        self.conv1 = conv(cin, cout, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = norm(cout)
        self.conv2 = conv(cout, cout, kernel, padding=pad, bias=False)
        self.bn2 = norm(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            relu = [nn.ReLU()] if shortcut_relu else []
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride=stride, bias=False), norm(cout), *relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))
