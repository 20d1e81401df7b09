"""Batched waveform augmentation for training: time shift, speed change, room reverberation, microphone tilt, gain and
additive noise at a random SNR."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .config import option
from .errors import AudiomnistError, ConfigError
from .placement import copy_spans
from .synth import room_tail

NOISE_COLORS = ("white", "pink")
MAX_RT60 = 2.0  # seconds; a longer room is an echo chamber, and its impulse costs as much as the clip
ROOM_DRR_DB = (0.0, 15.0)  # direct-to-reverberant energy ratio, as synth.py draws its voices' rooms


@dataclass(frozen=True)
class AugmentConfig:
    """Each item draws its own values; a zero range or probability turns that step off.

    tilt is a random first-order filter y[t] = x[t] - a x[t-1] (synth.tilt, batched here in torch), a uniform in
    [-tilt, +tilt]: it tilts the spectrum by up to 20*log10((1+tilt)/(1-tilt)) dB from DC to Nyquist, as a different
    microphone or room would.
    room plays that share of the clips through a random synthetic room (_room) before the microphone's tilt.
    trim cuts the spoken span (samples within 40 dB of the clip's peak, in 10 ms frames) as an aggressive silence
    trimmer does: some recordings lose the edges of their fricatives, e.g. the /s/ of "six".
    Noise power is relative to the item's own mean power over the whole clip.
    """

    shift_ms: float = option(100.0, "uniform time shift in [-shift_ms, +shift_ms], zero-filled")
    speed: tuple[float, float] = option((1.0, 1.0), "uniform resampling factor range LOW HIGH (tempo and pitch)")
    tilt: float = option(0.0, "spectral tilt strength in [0, 1): a random first-order filter per clip")
    room: float = option(0.0, "probability a clip is played in a random synthetic room (0: off)", metavar="P")
    rt60: tuple[float, float] = option((0.1, 0.7), "uniform reverberation time range LOW HIGH (s) of --augment.room")
    trim: float = option(0.0, "cut a uniform 0..trim fraction of the spoken span off each end")
    gain_db: float = option(6.0, "uniform gain in [-gain_db, +gain_db]")
    noise_prob: float = option(0.5, "probability of adding noise to a clip")
    snr_db: tuple[float, float] = option((10.0, 40.0), "uniform signal-to-noise ratio range LOW HIGH (dB)")
    noise_color: str = option("white", "white or pink noise", choices=NOISE_COLORS)
    vtlp: tuple[float, float] = option(
        (1.0, 1.0),
        "vocal-tract-length warp of the log-mel frequency axis, a uniform factor in LOW HIGH per clip (1 1: off)",
    )
    reverse_none: float = option(
        0.0, "probability a clip is played backwards and trained as 'none' (needs --negative; 0: off)", metavar="P"
    )

    def __post_init__(self) -> None:
        if not 0 <= self.trim < 0.5:
            raise ConfigError(f"augment: trim must be in [0, 0.5), got {self.trim}")
        if not 0 <= self.tilt < 1:
            raise ConfigError(f"augment: tilt must be in [0, 1), got {self.tilt}")
        if self.shift_ms < 0 or self.gain_db < 0 or not 0 <= self.noise_prob <= 1:
            raise ConfigError("augment: shift_ms and gain_db must be >= 0 and noise_prob in [0, 1]")
        if not 0 <= self.room <= 1:
            raise ConfigError(f"augment: room must be a probability in [0, 1], got {self.room}")
        if not 0 < self.rt60[0] <= self.rt60[1] <= MAX_RT60:
            raise ConfigError(f"augment: rt60 must be a range 0 < low <= high <= {MAX_RT60} s, got {self.rt60}")
        if not 0 <= self.reverse_none < 1:
            raise ConfigError(f"augment: reverse_none must be in [0, 1), got {self.reverse_none}")
        if not 0 < self.vtlp[0] <= self.vtlp[1]:
            raise ConfigError(f"augment: vtlp must be a range 0 < low <= high, got {self.vtlp}")
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ConfigError(f"augment: speed must be a range 0 < low <= high, got {self.speed}")
        if self.snr_db[0] > self.snr_db[1]:
            raise ConfigError(f"augment: snr_db must be a range low <= high, got {self.snr_db}")
        if self.noise_color not in NOISE_COLORS:
            raise ConfigError(f"augment: noise_color must be one of {NOISE_COLORS}, got {self.noise_color!r}")


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)


def _warp(x: torch.Tensor, speed: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """out[t] = x(c + (t - c) * speed - shift) by linear interpolation, zero outside the clip (c: the centre)."""
    b, n = x.shape
    t = torch.arange(n, device=x.device, dtype=x.dtype)
    c = (n - 1) / 2
    pos = c + (t - c) * speed[:, None] - shift[:, None]
    lo = pos.floor()
    frac = pos - lo
    lo = lo.long()
    hi = lo + 1

    def take(i: torch.Tensor) -> torch.Tensor:
        inside = (i >= 0) & (i < n)
        return torch.gather(x, 1, i.clamp(0, n - 1)) * inside

    return take(lo) * (1 - frac) + take(hi) * frac


def _shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """out[t] = x[t - shift], zero outside the clip: _warp at speed 1, as one slice copy per row (~10x cheaper)."""
    n = x.shape[1]
    s = shift.long().clamp(-n, n)
    return copy_spans(torch.zeros_like(x), x, s.clamp(min=0), (-s).clamp(min=0), n - s.abs())


def _pink(shape: tuple[int, int], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Noise with a 1/f power spectrum: white noise shaped in the frequency domain."""
    white = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    spec = torch.fft.rfft(white, dim=1)
    f = torch.arange(spec.shape[1], device=like.device, dtype=like.dtype)
    spec = spec * torch.where(f > 0, f.clamp(min=1).rsqrt(), torch.zeros_like(f))
    return torch.fft.irfft(spec, n=shape[1], dim=1)


NOISE_BANK_SAMPLES = 1 << 20  # each clip's noise is a random stretch of it, long enough to rarely repeat


@functools.lru_cache(maxsize=8)
def _noise_bank(color: str, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed stretch of white or pink noise, made once per device (seed 0), and the running sum of its
    squares (one longer; float64, float32 on MPS which has no float64), from which any stretch's power is two
    lookups."""
    like = torch.empty(0, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    bank = (
        _pink((1, NOISE_BANK_SAMPLES), like, gen)
        if color == "pink"
        else torch.randn(1, NOISE_BANK_SAMPLES, generator=gen)
    )
    energy = torch.nn.functional.pad(bank[0].double().square().cumsum(0), (1, 0))
    return bank[0].to(device=device, dtype=dtype), energy.to(
        device, torch.float32 if device.type == "mps" else torch.float64
    )


def _noise(
    k: int, n: int, color: str, like: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(k, n) noise and each row's mean power. Short clips cut random stretches, each with a random sign, from the
    noise bank, far cheaper than drawing fresh samples every step; clips longer than a quarter of the bank draw fresh
    noise."""
    if 4 * n > NOISE_BANK_SAMPLES:
        if color == "pink":
            noise = _pink((k, n), like, generator)
        else:
            noise = torch.randn((k, n), generator=generator, device=like.device, dtype=like.dtype)
        return noise, noise.square().mean(dim=1)
    bank, energy = _noise_bank(color, like.device, like.dtype)
    start = torch.randint(0, len(bank) - n + 1, (k,), generator=generator, device=like.device)
    sign = torch.randint(0, 2, (k, 1), generator=generator, device=like.device).to(like.dtype) * 2 - 1
    power = ((energy[start + n] - energy[start]) / n).to(like.dtype)
    return bank.unfold(0, n, 1)[start].mul_(sign), power


def _trim_edges(x: torch.Tensor, frac: float, sample_rate: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero a random 0..frac of each clip's spoken span at its start and, independently, at its end."""
    b, n = x.shape
    hop = max(1, sample_rate // 100)
    energy = torch.nn.functional.avg_pool1d(x.square()[:, None], hop, hop, ceil_mode=True)[:, 0]  # (B, frames)
    active = energy > energy.amax(dim=1, keepdim=True) * 1e-4
    first = active.int().argmax(dim=1)
    last = energy.shape[1] - 1 - active.flip(1).int().argmax(dim=1)
    start, end = (first * hop).to(x.dtype), ((last + 1) * hop).clamp(max=n).to(x.dtype)
    span = (end - start).clamp(min=0)
    cut0 = start + span * _uniform(b, 0.0, frac, x, generator)
    cut1 = end - span * _uniform(b, 0.0, frac, x, generator)
    t = torch.arange(n, device=x.device, dtype=x.dtype)
    return x * ((t >= cut0[:, None]) & (t < cut1[:, None]))


def _room(x: torch.Tensor, cfg: AugmentConfig, sample_rate: int, generator: torch.Generator | None) -> torch.Tensor:
    """Convolve a random `room` share of the rows with a synthetic room impulse: a direct path plus exponentially
    decaying noise (-60 dB at a uniform rt60) at a uniform direct-to-reverberant ratio (synth.room_tail, as for the
    synthetic voices); the real voices otherwise never leave their own room. The clip keeps its length (the
    tail past its end is cut)."""
    b, n = x.shape
    rows = (torch.rand(b, generator=generator, device=x.device) < cfg.room).nonzero().squeeze(1)
    if not len(rows):
        return x
    k, taps = len(rows), max(2, min(n, round(cfg.rt60[1] * sample_rate)))
    rt60 = _uniform(k, cfg.rt60[0], cfg.rt60[1], x, generator)[:, None]
    drr = _uniform(k, ROOM_DRR_DB[0], ROOM_DRR_DB[1], x, generator)[:, None]
    noise = torch.randn((k, taps), generator=generator, device=x.device, dtype=x.dtype)
    noise, rt60, drr = (v.cpu().double().numpy() for v in (noise, rt60, drr))  # (k, taps), (k, 1): small
    tail = torch.from_numpy(room_tail(noise, sample_rate, rt60, drr)).to(x)
    size = 1 << (n + taps - 1).bit_length()
    wet = torch.fft.irfft(torch.fft.rfft(x[rows], size) * torch.fft.rfft(tail, size), size)[:, :n]
    return x.index_copy(0, rows, wet)


def time_shifts(
    batch: int,
    cfg: AugmentConfig,
    sample_rate: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(batch,) whole-sample shifts, uniform in [-shift_ms, +shift_ms], as augment_waveforms draws them."""
    max_shift = round(cfg.shift_ms * sample_rate / 1000)
    return torch.randint(-max_shift, max_shift + 1, (batch,), generator=generator, device=device)


def augment_waveforms(
    x: torch.Tensor, cfg: AugmentConfig, sample_rate: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, T) -> (B, T) augmented; draws come from `generator` (on x's device), so a seeded run is reproducible."""
    if x.dim() != 2:
        raise AudiomnistError(f"augment_waveforms expects (batch, samples), got shape {tuple(x.shape)}")
    b, n = x.shape
    max_shift = round(cfg.shift_ms * sample_rate / 1000)
    if max_shift > 0 or cfg.speed != (1.0, 1.0):
        shift = time_shifts(b, cfg, sample_rate, generator, x.device).to(x.dtype)
        if cfg.speed == (1.0, 1.0):
            x = _shift(x, shift)
        else:
            x = _warp(x, _uniform(b, cfg.speed[0], cfg.speed[1], x, generator), shift)
    if cfg.trim > 0:
        x = _trim_edges(x, cfg.trim, sample_rate, generator)
    if cfg.room > 0:
        x = _room(x, cfg, sample_rate, generator)
    if cfg.tilt > 0:
        a = _uniform(b, -cfg.tilt, cfg.tilt, x, generator)[:, None]
        x = x - a * torch.nn.functional.pad(x[:, :-1], (1, 0))
    if cfg.gain_db > 0:
        x = x * 10 ** (_uniform(b, -cfg.gain_db, cfg.gain_db, x, generator) / 20)[:, None]
    if cfg.noise_prob > 0:
        apply = torch.rand(b, generator=generator, device=x.device) < cfg.noise_prob
        snr = _uniform(b, cfg.snr_db[0], cfg.snr_db[1], x, generator)
        rows = apply.nonzero().squeeze(1)  # noise only for the rows that get it
        if len(rows):
            noise, noise_power = _noise(len(rows), n, cfg.noise_color, x, generator)
            signal_power = torch.linalg.vector_norm(x, dim=1)[rows].square() / n
            scale = (signal_power / 10 ** (snr[rows] / 10) / noise_power.clamp(min=1e-24)).sqrt()
            x = x.index_add(0, rows, noise.mul_(scale[:, None]))
    return x


def reverse_as_none(
    x: torch.Tensor, y: torch.Tensor, prob: float, none: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Play each (B, T) clip backwards with probability `prob` and relabel it `none`.

    Backwards speech keeps its speaker, microphone and spectra but says no word: for real voices that only ever say
    digits in training, these are the only "not a digit" examples in their own voice.
    """
    if prob <= 0:
        return x, y
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < prob
    x = torch.where(flip[:, None], x.flip(1), x)
    return x, torch.where(flip.to(y.device), torch.full_like(y, none), y)


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al. 2018): blend the batch with a shuffled copy of itself by one lam ~ Beta(alpha, alpha).

    Returns the mixed batch, the partner labels and lam; the loss is lam * CE(y) + (1 - lam) * CE(partner).
    """
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    return x.mul(lam).add_(x[perm], alpha=1 - lam), y[perm], lam


def warp_frequency(
    x: torch.Tensor, centers_hz: torch.Tensor, low: float, high: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Vocal-tract-length perturbation (Jaitly & Hinton 2013) on (B, 1, bands, frames) features: each clip draws a
    factor a in [low, high] and band k takes the value the clip had at centers_hz[k] / a (linear interpolation
    between bands, the edge bands held), so a > 1 moves formants up as a shorter vocal tract would."""
    if (low, high) == (1.0, 1.0):
        return x
    b, bands = x.shape[0], x.shape[2]
    alpha = _uniform(b, low, high, x, generator).float()
    centers = centers_hz.to(x.device, torch.float32)
    src = centers[None, :] / alpha[:, None]  # (B, bands): where each output band reads from, in Hz
    idx = torch.searchsorted(centers, src.contiguous()).clamp(1, bands - 1)
    lo_hz, hi_hz = centers[idx - 1], centers[idx]
    w = ((src - lo_hz) / (hi_hz - lo_hz)).clamp(0, 1).to(x.dtype)[:, None, :, None]
    below = x.gather(2, (idx - 1)[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))
    above = x.gather(2, idx[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))
    return below + (above - below) * w
