"""Google's speech_embedding (Lin et al. 2020, arXiv:2002.01322) as a frozen torch front end.

A convolutional encoder that Google trained on a large amount of real speech so that keyword spotters can learn from
few or synthetic examples: a waveform becomes one 96-number vector every 80 ms, each over 775 ms of audio. The
package's models see FSDD's six voices and synthetic ones; the encoder brings what it learnt from many real voices
(experiments/embedding/README.md has the measurements).

The weights (pretrained/speech_embedding.pt, 328k numbers) are the ONNX port that ships in the openwakeword 0.4.0
wheel, Apache-2.0 (pretrained/NOTICE), converted by tools/convert_speech_embedding.py, which checks this module
against onnxruntime on the original graphs. The mel front end is rebuilt from its definition (periodic Hann 400 in
an FFT of 512, librosa's Slaney mel matrix 60-3800 Hz); only the encoder's weights are stored.

The encoder is a chain of convolutions whose time stride (8 frames) equals the step between embeddings, so it runs
once over a whole clip's frames and gives every 76-frame window's vector, the same numbers as running each window.
"""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import torch
from torch import nn

from .errors import AudiomnistError

SAMPLE_RATE = 16000  # the encoder's rate
N_FFT, WIN_LENGTH, HOP_LENGTH = 512, 400, 160
N_MELS, F_MIN, F_MAX = 32, 60.0, 3800.0
TOP_DB = 80.0  # each clip's dB mel floored this far below its own peak
PEAK = 0.5 * 32767  # every clip is brought to this peak: the encoder takes int16-scale samples and is not gain-free
WINDOW_FRAMES, STEP_FRAMES = 76, 8  # mel frames under one embedding, and between two
DIM = 96
LEAK, FLOOR = 0.2, -0.4  # every activation is LeakyReLU(0.2) then max(x, -0.4)
# (channels, pairs of (1x3 frequency, 3x1 time) convolutions, then max-pool (time, frequency)) per stage
STAGES = ((24, 1, (2, 2)), (48, 2, (1, 2)), (72, 2, (2, 2)), (96, 2, (1, 2)), (96, 2, (2, 2)))
WEIGHTS = Path(__file__).parent / "pretrained" / "speech_embedding.pt"
# The FIR that doubles 8 kHz audio to 16 kHz: half-band windowed sinc, cut at 3.8 kHz (the mel matrix's top).
UPSAMPLE_TAPS, UPSAMPLE_CUTOFF, UPSAMPLE_BETA = 97, 3800.0, 8.0


def num_embeddings(num_samples: int, sample_rate: int) -> int:
    """Vectors a window of num_samples at sample_rate gives (0 when it is shorter than one vector's 775 ms)."""
    frames = 1 + (num_samples * SAMPLE_RATE // sample_rate - N_FFT) // HOP_LENGTH
    return max(0, 1 + (frames - WINDOW_FRAMES) // STEP_FRAMES)


class Encoder(nn.Module):
    """(B, 1, frames, 34) mel with one band of padding each side -> (B, 96, embeddings, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, STAGES[0][0], 3, bias=False)
        # The graph's batch norm sits after a ReLU, so it cannot fold into conv0: kept as a per-channel affine.
        self.register_buffer("bn_scale", torch.ones(STAGES[0][0]))
        self.register_buffer("bn_shift", torch.zeros(STAGES[0][0]))
        layers: list[nn.Module] = []
        channels = STAGES[0][0]
        for out, pairs, pool in STAGES:
            for _ in range(pairs):
                layers += [nn.Conv2d(channels, out, (1, 3), padding=(0, 1)), nn.Conv2d(out, out, (3, 1))]
                channels = out
            layers.append(nn.MaxPool2d(pool, pool))
        self.convs = nn.ModuleList(layers)
        self.final = nn.Conv2d(channels, DIM, (3, 1), bias=False)

    @staticmethod
    def _act(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.leaky_relu(x, LEAK).clamp_min(FLOOR)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv0(mel))
        x = self._act(x * self.bn_scale[:, None, None] + self.bn_shift[:, None, None])
        for layer in self.convs:
            x = layer(x) if isinstance(layer, nn.MaxPool2d) else self._act(layer(x))
        return self.final(x)


def _upsample_filter() -> torch.Tensor:
    n = torch.arange(UPSAMPLE_TAPS, dtype=torch.float64) - UPSAMPLE_TAPS // 2
    fc = UPSAMPLE_CUTOFF / SAMPLE_RATE
    taps = (
        2 * fc * torch.sinc(2 * fc * n) * torch.kaiser_window(UPSAMPLE_TAPS, False, UPSAMPLE_BETA, dtype=torch.float64)
    )
    return (2 * taps / taps.sum()).float()[None, None]  # gain 2: half the upsampled samples are zeros


def dft_basis(n_fft: int, win_length: int) -> torch.Tensor:
    """(2 * bins, 1, n_fft): cos and -sin rows times a periodic Hann of win_length centred in the FFT frame (as
    torch.stft centres a shorter window): a strided conv1d with it is the STFT, from operators every ONNX runtime has.
    Shared with features.DftLogMel."""
    window = torch.zeros(n_fft, dtype=torch.float64)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * ((k * torch.arange(n_fft, dtype=torch.float64)[None, :]) % n_fft) / n_fft
    return torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window]).float()[:, None, :]


class SpeechEmbedding(nn.Module):
    """(B, samples) at 8 or 16 kHz -> (B, embeddings, 96). Frozen: no parameter takes a gradient, no train mode.

    Each clip is brought to one peak first (the encoder expects int16-scale samples), 8 kHz audio is doubled to
    16 kHz by a fixed FIR, and the mel is floored per clip, so batching never changes a result. Built only from
    operators every ONNX runtime has (Conv, MatMul, Log, MaxPool, ...).
    """

    def __init__(self, sample_rate: int, weights: Path = WEIGHTS) -> None:
        super().__init__()
        if sample_rate not in (SAMPLE_RATE // 2, SAMPLE_RATE):
            raise AudiomnistError(f"the speech_embedding front end reads 8 or 16 kHz audio, got {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.register_buffer("upsample", _upsample_filter(), persistent=False)
        self.register_buffer("dft", dft_basis(N_FFT, WIN_LENGTH), persistent=False)
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
        self.register_buffer("mel_fb", torch.from_numpy(mel).float(), persistent=False)
        self.encoder = Encoder()
        self.encoder.load_state_dict(load_weights(weights))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> SpeechEmbedding:
        return self  # frozen: nothing in it changes with the mode, and no caller should switch it

    def to_16k(self, x: torch.Tensor) -> torch.Tensor:
        """(B, samples) at 8 kHz -> (B, 2 * samples) at 16 kHz: zeros between the samples, then the low-pass (the
        usual 2x interpolation, as one convolution)."""
        x = torch.stack([x, torch.zeros_like(x)], dim=2).flatten(1)
        return nn.functional.conv1d(x[:, None], self.upsample, padding=UPSAMPLE_TAPS // 2)[:, 0]

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) at 16 kHz, int16 scale -> (B, frames, 32): dB / 10 + 2, as the encoder was trained on."""
        spec = nn.functional.conv1d(wave[:, None, :], self.dft, stride=HOP_LENGTH)
        bins = self.dft.shape[0] // 2
        power = spec[:, :bins].square() + spec[:, bins:].square()  # (B, bins, frames)
        db = 10 * torch.log10(torch.matmul(self.mel_fb, power).clamp_min(1e-10)).transpose(1, 2)
        db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)
        return db / 10 + 2

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise AudiomnistError(f"SpeechEmbedding expects (batch, samples), got shape {tuple(wave.shape)}")
        with torch.autocast(wave.device.type, enabled=False):
            x = wave.float()
            x = x * (PEAK / (x.abs().amax(dim=1, keepdim=True) + 1e-9))
            if self.sample_rate != SAMPLE_RATE:
                x = self.to_16k(x)
            mel = nn.functional.pad(self.log_mel(x), (1, 1))[:, None]  # one band of padding each side, as trained
            if not torch.jit.is_tracing() and mel.shape[2] < WINDOW_FRAMES:  # an export traces one window size
                raise AudiomnistError(
                    f"speech_embedding needs at least {WINDOW_FRAMES * HOP_LENGTH / SAMPLE_RATE:.2f} s of audio"
                )
            return self.encoder(mel)[..., 0].transpose(1, 2)


def load_weights(path: Path = WEIGHTS) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AudiomnistError(
            f"{path}: the speech_embedding weights are missing (tools/convert_speech_embedding.py makes them)"
        ) from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise AudiomnistError(f"{path}: not a readable speech_embedding weights file ({type(e).__name__})") from None
    return state
