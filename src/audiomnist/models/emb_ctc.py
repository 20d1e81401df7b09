"""A digit-string head over the frozen speech_embedding encoder's vectors: CTC over {blank, 0-9}, one output per
80 ms vector, or `outputs_per_vector` of them (features.kind "speech_embedding").

Each vector (96 numbers over 775 ms of audio) goes through a layer-normalised projection, then residual 3-tap
convolutions along time; `lookahead` of them see one vector of the future, the others only the past, so the head
adds at most `lookahead` x 80 ms to what the encoder's window already looks ahead. ~0.3M parameters.
CTC needs an output frame per digit and a blank between two equal ones; a number said fast has digits under 3 vectors
long, so each vector may give `outputs_per_vector` frames (the last layer's outputs side by side, 80 / k ms apart;
off by default: it did not help fast speech, experiments/strings/README.md "Natural pace").
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
        outputs_per_vector: int = 1,
    ):
        super().__init__()
        if not 0 <= lookahead <= layers:
            raise AudiomnistError(f"emb-ctc: lookahead {lookahead} must be 0..layers ({layers})")
        if outputs_per_vector < 1:
            raise AudiomnistError(f"emb-ctc: outputs_per_vector must be >= 1, got {outputs_per_vector}")
        self.dim, self.per_vector, self.num_classes = dim, outputs_per_vector, num_classes
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU())
        self.convs = nn.Sequential(*(_Residual(hidden, int(i < lookahead), dropout) for i in range(layers)))
        self.head = nn.Linear(hidden, num_classes * outputs_per_vector)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 3 or x.shape[2] != self.dim):  # an export traces one size
            raise AudiomnistError(
                f"emb-ctc expects (batch, vectors, {self.dim}) speech_embedding features, got {tuple(x.shape)}: "
                "train it with --features.kind speech_embedding"
            )
        z = self.convs(self.inp(x).transpose(1, 2))
        out = self.head(z.transpose(1, 2))  # (B, vectors, k x classes): a vector's k frames side by side
        return out.unflatten(2, (self.per_vector, self.num_classes)).flatten(1, 2)

    def output_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """outputs_per_vector outputs per input vector."""
        return frames * self.per_vector
