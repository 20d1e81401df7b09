"""A digit-string head over the frozen speech_embedding encoder's vectors: CTC over {blank, 0-9}, one output per
80 ms vector (features.kind "speech_embedding").

Each vector (96 numbers over 775 ms of audio) goes through a layer-normalised projection, then residual 3-tap
convolutions along time; `lookahead` of them see one vector of the future, the others only the past, so the head
adds at most `lookahead` x 80 ms to what the encoder's window already looks ahead. ~0.3M parameters.
experiments/embedding/README.md ("A string recogniser on the embeddings") measured the design.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AudiomnistError
from . import register


class _Residual(nn.Module):
    def __init__(self, channels: int, ahead: int, dropout: float):
        super().__init__()
        self.pad = (2 - ahead, ahead)  # a 3-tap kernel: 2 frames of context, `ahead` of them in the future
        self.conv = nn.Conv1d(channels, channels, 3)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(F.gelu(self.conv(F.pad(x, self.pad))))


@register("emb-ctc")
class EmbeddingCtc(nn.Module):
    """(B, vectors, 96) speech_embedding -> (B, vectors, classes): residual convolutions for CTC digit strings."""

    input_kind = "embedding"
    recommended: dict = {"features": {"kind": "speech_embedding"}}
    sequence = True  # per-vector outputs for CTC, not one answer per clip

    def __init__(
        self,
        num_classes: int = 11,
        dim: int = 96,
        hidden: int = 192,
        layers: int = 3,
        lookahead: int = 3,
        dropout: float = 0.1,
    ):
        super().__init__()
        if not 0 <= lookahead <= layers:
            raise AudiomnistError(f"emb-ctc: lookahead {lookahead} must be 0..layers ({layers})")
        self.dim = dim
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU())
        self.convs = nn.Sequential(*(_Residual(hidden, int(i < lookahead), dropout) for i in range(layers)))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 3 or x.shape[2] != self.dim):  # an export traces one size
            raise AudiomnistError(
                f"emb-ctc expects (batch, vectors, {self.dim}) speech_embedding features, got {tuple(x.shape)}: "
                "train it with --features.kind speech_embedding"
            )
        z = self.convs(self.inp(x).transpose(1, 2))
        return self.head(z.transpose(1, 2))

    @staticmethod
    def output_frames(frames: torch.Tensor) -> torch.Tensor:
        """One output per input vector."""
        return frames
