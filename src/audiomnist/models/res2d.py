"""A small 2-D residual CNN that downsamples early, so a CPU trains it fast.

bcresnet keeps 20 frequency rows and every other frame at 24-60 channels through most of its 112 layers, so
each step moves hundreds of MB of activations through many small depthwise convolutions and BatchNorms. This
net keeps 2-D convolutions (so a formant pattern is recognised at any frequency shift, which a 1-D net over mel
channels cannot do) but halves both axes in the stem and again in each stage: after the first stage the maps are
(10 x 26), then (5 x 13), (3 x 7), and every layer is a dense 3x3 convolution, which oneDNN runs well.

stem 3x3 stride 2 to 16 x width channels, then stages of `blocks` residual blocks (two 3x3 convolutions, BatchNorm,
ReLU; a strided 1x1 shortcut where the shape changes) with 24, 32, 48 x width channels, global average, dropout,
linear. Any input size works. channels_last (default on) stores activations and weights channel-innermost, the
layout oneDNN's convolutions compute in, which saves a reorder before and after every convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from . import register
from .blocks import ResBlock

STAGE_CHANNELS = (24, 32, 48)


@register("res2d")
class Res2D(nn.Module):
    """(B, 1, n_mels, frames) -> (B, classes), early-downsampling 2-D ResNet. width 1 ~ 60k parameters."""

    input_kind = "logmel"
    recommended: dict = {}

    def __init__(
        self,
        num_classes: int = 10,
        width: float = 1.0,
        blocks: int = 1,
        dropout: float = 0.1,
        channels_last: bool = True,
    ):
        super().__init__()
        self.channels_last = channels_last

        def ch(c: int) -> int:
            return max(1, round(c * width))

        cin = ch(16)
        self.stem = nn.Sequential(nn.Conv2d(1, cin, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cin), nn.ReLU())
        layers: list[nn.Module] = []
        for c in STAGE_CHANNELS:
            for i in range(blocks):
                layers.append(ResBlock(2, cin, ch(c), 2 if i == 0 else 1))
                cin = ch(c)
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))
        return self.classifier(self.dropout(x.mean(dim=(2, 3))))
