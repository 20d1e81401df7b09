"""Model front-ends (log-mel spectrogram, normalised waveform, or the pretrained speech_embedding encoder) and
SpecAugment, as batched torch modules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import torch
from torch import nn

from .config import option
from .errors import AudiomnistError, ConfigError
from .speech_embedding import SpeechEmbedding, dft_basis

FEATURE_KINDS = ("logmel", "waveform", "speech_embedding")
NORMALIZE_MODES = ("utterance", "band", "none")


@dataclass(frozen=True)
class FeatureConfig:
    """What the model sees. Defaults: the usual keyword-spotting front-end at the default 8 kHz audio rate,
    25 ms Hann windows (200 samples, FFT 256) every 10 ms (80 samples), 40 mel bands up to Nyquist.
    Window and hop are in samples: set them with the sample rate (the v1-v3 presets do, for 48 kHz).

    top_db floors each clip relative to its own loudest cell (like librosa.power_to_db(top_db=...)), so a quiet
    recording and a loud one of the same word give the same features; an absolute floor would flatten more of
    the quiet one. normalize="band" then removes each mel band's own mean over the clip's frames (cepstral mean
    normalisation) and divides by the clip's one remaining standard deviation: it removes a microphone's or
    room's fixed colouring, which on FSDD is what separates speakers most (README, Decisions, has the numbers).
    Statistics are per clip either way, never per batch.
    """

    kind: str = option(
        "logmel",
        "what the network gets: log-mel frames, the normalised waveform, or the vectors of the frozen pretrained "
        "speech_embedding encoder (which ignores the other feature settings)",
        choices=FEATURE_KINDS,
    )
    n_fft: int = option(256, "FFT size (samples)")
    win_length: int = option(200, "analysis window (samples)")
    hop_length: int = option(80, "frame step (samples)")
    n_mels: int = option(40, "mel bands", aliases=("--n-mels",))
    f_min: float = option(20.0, "lowest mel frequency (Hz)")
    f_max: float | None = option(None, "highest mel frequency (Hz); none: Nyquist")
    normalize: str = option("band", "per-clip normalisation", choices=NORMALIZE_MODES)
    top_db: float | None = option(80.0, "floor each clip's log-mel this far below its own peak (dB); none: no floor")
    log_floor: float = option(1e-12, "added to mel power before the log, so digital silence stays finite")

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ConfigError(f"feature kind must be one of {FEATURE_KINDS}, got {self.kind!r}")
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")
        if not 0 < self.win_length <= self.n_fft:
            raise ConfigError(f"win_length must be in 1..n_fft ({self.n_fft}), got {self.win_length}")
        if self.hop_length <= 0 or self.n_mels <= 0 or self.log_floor <= 0:
            raise ConfigError("hop_length, n_mels and log_floor must be positive")
        if self.top_db is not None and self.top_db <= 0:
            raise ConfigError(f"top_db must be positive or None, got {self.top_db}")

    def num_frames(self, num_samples: int) -> int:
        """Frames a clip of num_samples gives (centred STFT)."""
        return 1 + num_samples // self.hop_length


def _standardize(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


class LogMel(nn.Module):
    """(B, T) waveform -> (B, 1, n_mels, frames) natural-log mel power; matches librosa.feature.melspectrogram.

    Mel filters are librosa's defaults (Slaney scale, Slaney area normalisation), the STFT is centred with
    librosa's default constant (zero) padding, it always runs in float32 (autocast off), and every step works
    per item, so batching never changes a result.
    """

    def __init__(self, cfg: FeatureConfig, sample_rate: int):
        super().__init__()
        f_max = cfg.f_max if cfg.f_max is not None else sample_rate / 2
        if not 0 <= cfg.f_min < f_max <= sample_rate / 2:
            raise AudiomnistError(f"need 0 <= f_min < f_max <= {sample_rate / 2} Hz, got {cfg.f_min}..{f_max}")
        self.cfg = cfg
        self.sample_rate = sample_rate
        mel = librosa.filters.mel(sr=sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=f_max)
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=True), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel).float(), persistent=False)
        centers = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.f_min, fmax=f_max, htk=False)[1:-1]
        self.register_buffer("centers_hz", torch.from_numpy(centers).float(), persistent=False)
        # The filterbank with each row twice, to multiply squared (re, im) pairs: the sum re^2 + im^2 happens in
        # the one matrix product, on the FFT's own contiguous (frames, bins) layout.
        self.register_buffer("mel_fb_pairs", self.mel_fb.T.repeat_interleave(2, dim=0).contiguous(), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise AudiomnistError(f"LogMel expects a (batch, samples) waveform, got shape {tuple(wave.shape)}")
        with torch.autocast(wave.device.type, enabled=False):
            return self._logmel(wave.to(self.window.dtype)).unsqueeze(1)

    def _logmel(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        spec = torch.stft(
            wave,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        # Everything after the STFT works on its contiguous (B, frames, bins) layout, turned to (B, mels, frames)
        # at the end: reductions over the transposed view are slow (strided memory).
        pairs = torch.view_as_real(spec.transpose(1, 2)).square_().flatten(2)  # (B, frames, 2 * bins)
        logmel = (
            torch.matmul(pairs, self.mel_fb_pairs).add_(cfg.log_floor).log_()
        )  # (B, frames, mels), in place from here
        if cfg.top_db is not None:
            logmel = logmel.clamp_(min=logmel.amax(dim=(1, 2), keepdim=True) - cfg.top_db * math.log(10) / 10)
        if cfg.normalize == "none":
            return logmel.transpose(1, 2).contiguous()
        logmel = logmel.sub_(logmel.mean(dim=(1, 2) if cfg.normalize == "utterance" else 1, keepdim=True))
        # Divide by each clip's standard deviation (its RMS, now that it is centred: cheaper than torch.std over two
        # dimensions), writing the (B, mels, frames) result in the same pass.
        rms = torch.linalg.vector_norm(logmel, dim=(1, 2), keepdim=True) / math.sqrt(logmel.shape[1] * logmel.shape[2])
        out = torch.empty(logmel.shape[0], logmel.shape[2], logmel.shape[1], dtype=logmel.dtype, device=logmel.device)
        return torch.div(logmel.transpose(1, 2), rms + 1e-5, out=out)


class DftLogMel(LogMel):
    """LogMel with the STFT as one strided conv1d over a fixed basis (DFT rows times the window), for export.

    The same numbers as LogMel to float32 rounding, built from operators every ONNX runtime has (Conv, MatMul,
    ReduceMax, ...): torch.stft's ONNX export depends on the exporter and opset and is not supported everywhere.
    """

    def __init__(self, cfg: FeatureConfig, sample_rate: int):
        super().__init__(cfg, sample_rate)
        self.register_buffer("dft", dft_basis(cfg.n_fft, cfg.win_length), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        bins = self.dft.shape[0] // 2
        # Zero padding by n_fft // 2 on both sides is the centred STFT's constant padding.
        spec = nn.functional.conv1d(wave.float()[:, None, :], self.dft, stride=cfg.hop_length, padding=cfg.n_fft // 2)
        power = spec[:, :bins].square() + spec[:, bins:].square()  # (B, bins, frames)
        logmel = torch.log(torch.matmul(self.mel_fb, power) + cfg.log_floor)  # (B, mels, frames)
        if cfg.top_db is not None:
            logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - cfg.top_db * math.log(10) / 10)
        if cfg.normalize != "none":
            logmel = logmel - logmel.mean(dim=(1, 2) if cfg.normalize == "utterance" else 2, keepdim=True)
            logmel = logmel / (logmel.square().mean(dim=(1, 2), keepdim=True).sqrt() + 1e-5)
        return logmel.unsqueeze(1)


class WaveformFrontend(nn.Module):
    """(B, T) -> (B, 1, T), each clip scaled to zero mean and unit standard deviation."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise AudiomnistError(f"WaveformFrontend expects (batch, samples), got shape {tuple(wave.shape)}")
        return _standardize(wave, dims=(1,), eps=1e-8).unsqueeze(1)


def build_frontend(cfg: FeatureConfig, sample_rate: int, exportable: bool = False) -> nn.Module:
    """The front-end for `cfg`; exportable=True: the log-mel as DftLogMel (same numbers, ONNX-friendly operators)."""
    if cfg.kind == "speech_embedding":
        return SpeechEmbedding(sample_rate)
    if cfg.kind != "logmel":
        return WaveformFrontend()
    return DftLogMel(cfg, sample_rate) if exportable else LogMel(cfg, sample_rate)


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Frequency and time masks (Park et al. 2019); each mask spans 0..max_*_frac of its axis."""

    freq_masks: int = option(2, "frequency masks per clip")
    time_masks: int = option(2, "time masks per clip")
    max_freq_frac: float = option(0.1, "widest frequency mask, as a fraction of the bands")
    max_time_frac: float = option(0.1, "widest time mask, as a fraction of the frames")


def _band_masks(
    batch: int, size: int, count: int, max_frac: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor | None:
    """(batch, size) bool: the union of `count` random bands per item, each 0..floor(max_frac*size) wide; None
    when the configuration masks nothing. All bands are drawn at once (a handful of ops whatever the count)."""
    max_width = int(max_frac * size)
    if count <= 0 or max_width <= 0:
        return None
    width = torch.randint(0, max_width + 1, (batch, count, 1), generator=generator, device=device)
    start = (torch.rand(batch, count, 1, generator=generator, device=device) * (size - width + 1)).long()
    offset = torch.arange(size, device=device) - start  # position relative to each band's start
    return ((offset >= 0) & (offset < width)).any(dim=1)


def spec_augment(x: torch.Tensor, cfg: SpecAugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask random bands and frame spans of (B, 1, F, T) features with each clip's own mean (0 once normalised).

    Filling with the clip's mean rather than a constant keeps masks neutral whether or not features are normalised.
    The two kinds of mask are applied one after the other, each broadcast along the other axis, so no (B, F, T)
    mask is ever built.
    """
    if x.dim() != 4:
        raise AudiomnistError(f"spec_augment expects (batch, channels, freq, time), got shape {tuple(x.shape)}")
    b, _, f, t = x.shape
    freq = _band_masks(b, f, cfg.freq_masks, cfg.max_freq_frac, generator, x.device)
    time = _band_masks(b, t, cfg.time_masks, cfg.max_time_frac, generator, x.device)
    if freq is None and time is None:
        return x
    fill = x.mean(dim=(1, 2, 3), keepdim=True)
    if freq is not None:
        x = torch.where(freq[:, None, :, None], fill, x)
    if time is not None:
        x = torch.where(time[:, None, None, :], fill, x)
    return x
