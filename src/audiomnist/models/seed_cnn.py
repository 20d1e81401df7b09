"""The original project's network: four stride-2 convolutions (conv -> ReLU -> BatchNorm), average pool, linear."""

from __future__ import annotations

import torch
from torch import nn

from . import register

CHANNELS = (8, 16, 32, 64)


@register("seed-cnn")
class SeedCNN(nn.Module):
    """Kept as in the original (5x5 then 3x3 kernels, Kaiming-normal a=0.1, zero bias), with one input channel
    where the original fed the same mono spectrogram twice."""

    input_kind = "logmel"
    recommended: dict = {}

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(CHANNELS):
            k, pad = (5, 2) if i == 0 else (3, 1)
            conv = nn.Conv2d(cin, cout, kernel_size=k, stride=2, padding=pad)
            nn.init.kaiming_normal_(conv.weight, a=0.1)
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(), nn.BatchNorm2d(cout)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(CHANNELS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))
