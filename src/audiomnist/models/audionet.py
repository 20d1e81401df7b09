"""AudioNet, the raw-waveform network of the AudioMNIST paper (Becker et al. 2018), for 1 s at 8 kHz.

Layout from the authors' Caffe definition (soerenab/AudioMNIST, models/AudioNet/audionet_train.prototxt):
six 1-D convolutions (kernel 3, padding 1; 100, 64, 128, 128, 128, 128 filters), each followed by ReLU and
max pooling (kernel 3 stride 2 after conv1, kernel 2 stride 2 after the others; Caffe rounds pooled lengths up,
hence ceil_mode), then fully connected 1024 -> dropout 0.5 -> 512 -> dropout 0.5 -> classes. As in both of the
authors' definitions (Caffe and Keras) the two hidden FC layers have no activation. Deviations: weights use
Glorot-uniform init with zero bias (their Keras version; Caffe's N(0, 0.1) diverges with a 16,000-wide FC input),
and the input is standardised per clip (WaveformFrontend) instead of divided by its 95th percentile.
"""

from __future__ import annotations

import torch
from torch import nn

from . import register

CONV_CHANNELS = (100, 64, 128, 128, 128, 128)


@register("audionet")
class AudioNet(nn.Module):
    input_kind = "waveform"
    recommended = {"audio": {"sample_rate": 8000, "duration_ms": 1000}, "features": {"kind": "waveform"}}

    def __init__(self, num_classes: int = 10, num_samples: int = 8000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, cout in enumerate(CONV_CHANNELS):
            pool = nn.MaxPool1d(3, 2, ceil_mode=True) if i == 0 else nn.MaxPool1d(2, 2, ceil_mode=True)
            layers += [nn.Conv1d(cin, cout, kernel_size=3, padding=1), nn.ReLU(), pool]
            cin = cout
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 1, num_samples)).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 1024),
            nn.Dropout(dropout),
            nn.Linear(1024, 512),
            nn.Dropout(dropout),
            nn.Linear(512, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
