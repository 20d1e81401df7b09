"""TC-ResNet (Choi et al. 2019, "Temporal Convolution for Real-time Keyword Spotting on Mobile Devices").

The mel bands become the input channels of 1-D convolutions along time: (B, 1, n_mels, T) -> (B, n_mels, T).
Every layer is then a dense 1-D convolution over ~100 frames, a few large matrix products per layer instead of
the many small depthwise 2-D convolutions of bcresnet, which is what a CPU runs fast, forward and backward.

A 3-tap stem to 16 x width channels, then residual blocks of two 9-tap convolutions (BatchNorm, ReLU), each stage
halving time, with 24, 32, 48 x width channels; a 1x1 strided shortcut where a block changes shape. depth 8 has one
block a stage (TC-ResNet8), depth 14 two (TC-ResNet14). Deviations from the paper: dropout before the classifier,
and n_mels is read from the input, so any feature size works.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import AudiomnistError
from . import register
from .blocks import ResBlock

STAGE_CHANNELS = (24, 32, 48)
BLOCKS_PER_STAGE = {8: 1, 14: 2}


@register("tcresnet")
class TCResNet(nn.Module):
    """(B, 1, n_mels, frames) -> (B, classes), 1-D temporal convolutions. depth 8 width 1 ~ 66k parameters (40 mels)."""

    input_kind = "logmel"
    recommended: dict = {}

    def __init__(
        self,
        num_classes: int = 10,
        n_mels: int = 40,
        width: float = 1.0,
        depth: int = 8,
        kernel: int = 9,
        dropout: float = 0.1,
    ):
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise AudiomnistError(f"tcresnet: depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")

        def ch(c: int) -> int:
            return max(1, round(c * width))

        self.n_mels = n_mels
        cin = ch(16)
        self.stem = nn.Conv1d(n_mels, cin, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for c in STAGE_CHANNELS:
            for i in range(BLOCKS_PER_STAGE[depth]):
                blocks.append(ResBlock(1, cin, ch(c), 2 if i == 0 else 1, kernel, shortcut_relu=True))
                cin = ch(c)
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and x.shape[-2] != self.n_mels:  # an export traces one fixed size
            raise AudiomnistError(
                f"tcresnet was built for {self.n_mels} mel bands, got {x.shape[-2]} "
                f"(pass --model-arg n_mels={x.shape[-2]})"
            )
        x = self.blocks(self.stem(x.flatten(1, 2)))
        return self.classifier(self.dropout(x.mean(dim=2)))
