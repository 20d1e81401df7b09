"""A small head over the frozen speech_embedding encoder's vectors (features.kind "speech_embedding").

Each of the window's vectors (one every 80 ms, 96 numbers) goes through a layer-normalised MLP, one residual 3-tap
convolution along time mixes neighbours, and the max and the mean over time feed the classifier: the word may sit
anywhere in the window. ~64k parameters. experiments/embedding/README.md measured it (heads.py there).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import AudiomnistError
from . import register


@register("emb-head")
class EmbeddingHead(nn.Module):
    """(B, vectors, 96) speech_embedding -> (B, classes); ~64k parameters, the encoder's 328k frozen outside it."""

    input_kind = "embedding"
    # 1.6 s windows: 11 vectors, room for FSDD's longer words and a margin either side.
    recommended: dict = {
        "audio": {"duration_ms": 1600},
        "features": {"kind": "speech_embedding"},
        "weight_decay": 0.05,
        "batch_size": 128,
    }

    def __init__(self, num_classes: int = 10, dim: int = 96, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        self.dim = dim
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.conv = nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(), nn.Dropout(dropout))
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 3 or x.shape[2] != self.dim):  # an export traces one size
            raise AudiomnistError(
                f"emb-head expects (batch, vectors, {self.dim}) speech_embedding features, got {tuple(x.shape)}: "
                "train it with --features.kind speech_embedding (its default)"
            )
        z = self.inp(x).transpose(1, 2)
        z = self.conv(z) + z
        return self.classifier(torch.cat([z.amax(2), z.mean(2)], 1))
