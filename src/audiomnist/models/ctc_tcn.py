"""A streaming-friendly digit-string encoder: 1-D temporal convolutions over log-mel frames with a CTC output.

(B, 1, n_mels, T) -> (B, ceil(T / 4), classes) logits, one output every 4 input frames (40 ms at a 10 ms hop).
The mel bands are the channels, as in TC-ResNet (large dense 1-D convolutions: what a CPU runs fast). Every
convolution looks mostly back in time: each is padded on the left, and only `lookahead` output frames in all see
the future, so a digit can be emitted a fixed, short time after it is said, and a stream can be decoded in chunks.
BatchNorm is a fixed affine map at inference, so nothing depends on how long the input is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AudiomnistError
from . import register

STRIDE = 4  # input frames per output frame


class Conv(nn.Module):
    """Conv1d whose padding puts `ahead` frames of the future (and the rest of its span in the past) in view."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, ahead: int = 0):
        super().__init__()
        span = (kernel - 1) * dilation
        if not 0 <= ahead <= span:
            raise AudiomnistError(f"lookahead {ahead} outside a kernel spanning {span} frames")
        self.pad = (span - ahead, ahead)
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.pad(x, self.pad)))


class Block(nn.Module):
    """Two convolutions with a residual; the first may halve time."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, dilation: int, ahead: tuple[int, int]):
        super().__init__()
        self.conv1 = Conv(cin, cout, kernel, stride, 1 if stride > 1 else dilation, ahead[0])
        self.conv2 = Conv(cout, cout, kernel, 1, dilation, ahead[1])
        self.short = nn.Identity() if stride == 1 and cin == cout else Conv(cin, cout, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.short(x))


class Front2d(nn.Module):
    """Two 3x3 2-D convolutions that halve the mel axis each (time untouched, padded on the past side only), so
    a formant pattern is matched wherever a speaker's vocal tract puts it; (B, 1, mels, T) -> (B, ch x mels/4, T)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=(2, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    @staticmethod
    def bands(n_mels: int) -> int:
        return (n_mels + 3) // 4  # two halvings, each ceil

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(F.pad(x, (2, 0, 1, 1)))))  # (past frames, future frames, low, high bands)
        return F.relu(self.bn2(self.conv2(F.pad(x, (2, 0, 1, 1))))).flatten(1, 2)


def _spread(total: int, slots: int) -> list[int]:
    """`total` frames of lookahead over `slots` convolutions, the earliest first, at most 1 each... then more."""
    out = [0] * slots
    for i in range(total):
        out[i % slots] += 1
    return out


@register("ctc-tcn")
class CtcTcn(nn.Module):
    """(B, 1, n_mels, frames) -> (B, frames/4, classes): causal-leaning 1-D convolutions for CTC digit strings."""

    input_kind = "logmel"
    recommended: dict = {}
    sequence = True  # per-frame outputs for CTC, not one answer per clip

    def __init__(
        self,
        num_classes: int = 11,
        n_mels: int = 40,
        channels: int = 64,
        blocks: int = 5,
        kernel: int = 5,
        lookahead: int = 4,
        dropout: float = 0.1,
        front: int = 0,
    ):
        super().__init__()
        self.n_mels = n_mels
        # front > 0: a causal 2-D front-end of that many channels before the 1-D stack (0: mel bands are channels).
        self.front = Front2d(front) if front else None
        cin = front * Front2d.bands(n_mels) if front else n_mels
        # Output frames of lookahead, counted at the output rate; the stem's two 2x steps see 1 input frame ahead each.
        convs = 2 * blocks
        ahead = _spread(lookahead, convs)
        self.stem = Conv(cin, channels, 5, stride=2, ahead=1)
        layers = [Block(channels, channels, kernel, 2, 1, (1 + ahead[0], ahead[1]))]
        for b in range(1, blocks):
            layers.append(Block(channels, channels, kernel, 1, 2 ** (b % 3), (ahead[2 * b], ahead[2 * b + 1])))
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv1d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and x.shape[-2] != self.n_mels:  # an export traces one fixed size
            raise AudiomnistError(f"ctc-tcn was built for {self.n_mels} mel bands, got {x.shape[-2]}")
        x = self.front(x) if self.front is not None else x.flatten(1, 2)
        x = F.relu(self.stem(x))
        return self.head(self.dropout(self.blocks(x))).transpose(1, 2)

    @staticmethod
    def output_frames(frames: torch.Tensor) -> torch.Tensor:
        """Output frames for inputs of `frames` frames (two halvings, each ceil)."""
        return (frames + 3) // STRIDE
