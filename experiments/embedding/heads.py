"""A small head over frozen speech_embedding vectors (extract.py's .npz files), and its training loop."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BATCH = 128
LR = 3e-3


class Head(nn.Module):
    """Per-embedding MLP, one residual temporal convolution, max and mean over time, a linear layer: ~64k weights."""

    def __init__(self, dim: int = 96, hidden: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.2))
        self.conv = nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(), nn.Dropout(0.2))
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, dim)
        z = self.inp(x).transpose(1, 2)
        z = self.conv(z) + z
        return self.out(torch.cat([z.max(2).values, z.mean(2)], 1))


def load(path: str) -> dict[str, np.ndarray]:
    return dict(np.load(path))


def train(parts: list[tuple[np.ndarray, np.ndarray, float]], classes: int, epochs: int, seed: int) -> Head:
    """Train a Head on (embeddings, labels, per-clip sampling weight) parts: AdamW, one-cycle, label smoothing 0.05,
    batches drawn by weight, each batch shifted by one embedding (80 ms) either way or not at all."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.tensor(np.concatenate([e for e, _, _ in parts]))
    y = torch.tensor(np.concatenate([t for _, t, _ in parts]))
    w = np.concatenate([np.full(len(t), weight) for _, t, weight in parts])
    w = w / w.sum()
    net = Head(classes=classes)
    opt = torch.optim.AdamW(net.parameters(), LR, weight_decay=0.05)
    steps = len(y) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=epochs * steps)
    for _ in range(epochs):
        net.train()
        for _ in range(steps):
            idx = torch.tensor(rng.choice(len(y), BATCH, p=w))
            xb = torch.roll(x[idx], int(rng.integers(-1, 2)), 1)
            loss = nn.functional.cross_entropy(net(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def probabilities(net: Head, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(net(torch.tensor(x)), 1).numpy()
