"""BC-ResNet (Kim et al. 2021, "Broadcasted Residual Learning for Efficient Keyword Spotting") on log-mel input.

Each block filters along frequency (depthwise 3x1), averages frequency away for a cheap temporal branch
(depthwise 1x3, dilated, then 1x1), and broadcasts that result back over frequency as a residual. Stages of
2, 2, 4, 4 blocks with 8, 12, 16, 20 x width channels; the first block of each stage changes channels, stages
2 and 3 halve frequency, and time dilation grows 1, 2, 4, 8. Deviations from the paper: the stem also halves
time (time_stride=2: 20 ms steps are plenty for one word and halve the CPU cost); so that any n_mels works, the
head's 5x5 depthwise conv is padded on both axes and followed by a global average, and SubSpectral Norm
(subbands > 1, which must divide the frequency size of every stage) is optional: plain BatchNorm by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AudiomnistError
from . import register

STAGES = ((2, 8, 1, 1), (2, 12, 2, 2), (4, 16, 2, 4), (4, 20, 1, 8))  # (blocks, channels, freq stride, dilation)


class SubSpectralNorm(nn.Module):
    """BatchNorm with separate statistics for each of `subbands` equal frequency bands."""

    def __init__(self, channels: int, subbands: int):
        super().__init__()
        self.subbands = subbands
        self.bn = nn.BatchNorm2d(channels * subbands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        if f % self.subbands:
            raise AudiomnistError(f"bcresnet: subbands={self.subbands} does not divide a stage's {f} frequency rows")
        return self.bn(x.reshape(b, c * self.subbands, f // self.subbands, t)).reshape(b, c, f, t)


def _norm(channels: int, subbands: int) -> nn.Module:
    return SubSpectralNorm(channels, subbands) if subbands > 1 else nn.BatchNorm2d(channels)


class BCResBlock(nn.Module):
    """Broadcasted residual block; a transition block (cin != cout) swaps the identity for a 1x1 expansion."""

    def __init__(self, cin: int, cout: int, freq_stride: int, dilation: int, subbands: int, dropout: float):
        super().__init__()
        self.transition = cin != cout or freq_stride != 1
        self.expand = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
            if self.transition
            else nn.Identity()
        )
        self.freq = nn.Sequential(
            nn.Conv2d(cout, cout, (3, 1), stride=(freq_stride, 1), padding=(1, 0), groups=cout, bias=False),
            _norm(cout, subbands),
        )
        self.temporal = nn.Sequential(
            nn.Conv2d(cout, cout, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=cout, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        aux = self.freq(self.expand(x))
        out = aux + self.temporal(aux.mean(dim=2, keepdim=True))
        if not self.transition:
            out = out + x
        return F.relu(out)


@register("bcresnet")
class BCResNet(nn.Module):
    """(B, 1, n_mels, frames) -> (B, classes). width 1 ~ 8k parameters, 3 ~ 50k, 8 ~ 300k."""

    input_kind = "logmel"
    recommended: dict = {}

    def __init__(
        self, num_classes: int = 10, width: float = 3, subbands: int = 1, dropout: float = 0.1, time_stride: int = 2
    ):
        super().__init__()

        def ch(c: int) -> int:
            return max(1, round(c * width))

        cin = ch(16)
        self.stem = nn.Sequential(
            nn.Conv2d(1, cin, 5, stride=(2, time_stride), padding=2, bias=False), nn.BatchNorm2d(cin), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        for n, c, stride, dilation in STAGES:
            for i in range(n):
                blocks.append(BCResBlock(cin, ch(c), stride if i == 0 else 1, dilation, subbands, dropout))
                cin = ch(c)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(cin, cin, 5, padding=2, groups=cin, bias=False),
            nn.Conv2d(cin, ch(32), 1, bias=False),
            nn.BatchNorm2d(ch(32)),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(ch(32), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))
