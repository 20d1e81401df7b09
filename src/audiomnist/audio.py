"""Audio front-end: read any file soundfile can, downmix, resample (soxr), fit to a fixed window."""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
import torch

from .config import option
from .errors import AudioError, ConfigError
from .sources import path_problem

PAD_MODES = ("zeros", "noise")
CACHE_DTYPES = ("int16", "float16")
RESAMPLE_QUALITIES = ("VHQ", "HQ", "MQ", "LQ")  # "QQ" is left out: it does no anti-aliasing at all


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = option(16000, "rate every clip is resampled to (Hz)", aliases=("--sample-rate",))
    duration_ms: int = option(1000, "window the model sees (ms); longer clips are cropped on their energy",
                              aliases=("--duration-ms",))
    # "zeros" is the original v1/v2 padding; "noise" (v3) pads with noise within the clip's own range.
    pad_mode: str = option("zeros", "how a short clip is padded to the window", choices=PAD_MODES,
                           aliases=("--pad-mode",))
    cache_dtype: str = option("int16", "how the waveform cache stores samples", choices=CACHE_DTYPES)
    max_seconds: float = option(30.0, "longest stretch of a file that is read; the energy crop searches within it")
    # HQ: flat to 0.45 fs with a > 130 dB stopband, at a fraction of VHQ's cost.
    resample_quality: str = option("HQ", "soxr resampling quality", choices=RESAMPLE_QUALITIES)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.duration_ms <= 0 or self.num_samples < 1:
            raise ConfigError(f"AudioConfig: need positive sample_rate and duration_ms, got {self}")
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(f"AudioConfig: pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ConfigError(f"AudioConfig: cache_dtype must be one of {CACHE_DTYPES}, got {self.cache_dtype!r}")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            raise ConfigError(
                f"AudioConfig: resample_quality must be one of {RESAMPLE_QUALITIES}, got {self.resample_quality!r}"
            )
        if not self.max_seconds * 1000 >= self.duration_ms:
            raise ConfigError(f"AudioConfig: max_seconds ({self.max_seconds}) is shorter than duration_ms")

    @property
    def num_samples(self) -> int:
        return self.sample_rate * self.duration_ms // 1000


_local = threading.local()


def resample(x: np.ndarray, sr_in: int, sr_out: int, quality: str) -> np.ndarray:
    """soxr, same output as soxr.resample but reusing one resampler per rate pair and thread.

    Designing the filter is a large share of the work for a short clip, so it is done once.
    """
    streams = _local.__dict__.setdefault("streams", {})
    key = (sr_in, sr_out, quality)
    if key not in streams:
        streams[key] = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality=quality)
    rs = streams[key]
    rs.clear()
    return rs.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=True)


def load_audio(
    path: str | os.PathLike, sample_rate: int, max_seconds: float | None = None, quality: str = "HQ",
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Decode `path` to float32 mono at `sample_rate`; read at most `max_seconds` from the start.

    Raises AudioError for anything a model should not see: unreadable, empty, NaN/inf samples (unless
    `allow_nonfinite`: prediction answers "no digit" for those instead of refusing the file).
    """
    try:
        with sf.SoundFile(os.fsencode(path)) as f:  # bytes: names that are not valid UTF-8 open too
            sr = f.samplerate
            frames = f.frames
            if max_seconds is not None:
                frames = min(frames, math.ceil(max_seconds * sr))
            if f.subtype == "PCM_16":  # numpy scales int16 faster than libsndfile does, to identical values
                x = np.multiply(f.read(frames, dtype="int16", always_2d=True), np.float32(1 / 32768))
            else:
                x = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        problem = path_problem(path)  # libsndfile says "System error" for a denied permission or a symlink loop
        if problem == "no such file or folder":
            raise AudioError(path, "file not found") from None
        if problem is not None:
            raise AudioError(path, problem) from None
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise AudioError(path, "empty file (0 bytes)") from None
        reason = getattr(e, "error_string", None) or str(e)
        raise AudioError(path, f"not a readable audio file ({reason})") from None
    if len(x) == 0:
        raise AudioError(path, "no audio samples (0 frames)")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if not allow_nonfinite and not np.isfinite(x.sum(dtype=np.float64)) and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(path, f"{bad} NaN or infinite sample(s); refusing to use corrupt audio")
    if sr != sample_rate:
        x = resample(x, sr, sample_rate, quality)
        if len(x) == 0:
            raise AudioError(path, f"too short: no samples left after resampling {sr} Hz to {sample_rate} Hz")
    return np.ascontiguousarray(x, dtype=np.float32)


def crop_on_energy(x: np.ndarray, n: int) -> np.ndarray:
    """The n-sample window of `x` with the most energy (x itself if not longer than n).

    Real recordings have leading silence, so cutting at the start would lose the word.
    """
    if len(x) <= n:
        return x
    c = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
    start = int(np.argmax(c[n:] - c[:-n]))
    return x[start : start + n]


def prepare(x: np.ndarray, cfg: AudioConfig) -> tuple[np.ndarray, int]:
    """A decoded clip as the cache stores it: energy-cropped to at most num_samples, left-aligned."""
    x = crop_on_energy(x, cfg.num_samples)
    return x, len(x)


def _noise_floor(clips: torch.Tensor, lengths: torch.Tensor, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip, min and max of its quietest whole `frame` (lowest peak-to-peak), i.e. its own silence.

    A clip shorter than one frame uses all of its samples; an empty one gets (0, 0).
    """
    B, L = clips.shape
    nf = max(1, -(-L // frame))
    x = clips if L == nf * frame else torch.nn.functional.pad(clips, (0, nf * frame - L))
    x = x.view(B, nf, frame)
    lo, hi = torch.aminmax(x, dim=2)
    k = torch.arange(1, nf + 1, device=clips.device).view(1, nf)
    span = (hi - lo).masked_fill_(k * frame > lengths.view(B, 1), float("inf"))
    q = span.argmin(dim=1, keepdim=True)
    lo, hi = lo.gather(1, q).squeeze(1), hi.gather(1, q).squeeze(1)
    first = x[:, 0, :]
    head = torch.arange(frame, device=clips.device).view(1, frame) < lengths.view(B, 1)
    short = lengths < frame
    lo = torch.where(short, first.masked_fill(~head, float("inf")).amin(dim=1), lo)
    hi = torch.where(short, first.masked_fill(~head, float("-inf")).amax(dim=1), hi)
    empty = lengths <= 0
    return lo.masked_fill(empty, 0.0), hi.masked_fill(empty, 0.0)


def fit_batch(
    clips: torch.Tensor,
    lengths: torch.Tensor,
    cfg: AudioConfig,
    train: bool,
    generator: torch.Generator | None = None,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Place left-aligned float clips (B, L) of `lengths` in a (B, num_samples) window.

    Offsets are random in training and centred in evaluation; a clip longer than the window is
    cropped the same way. `shift` (B,) samples, if given, moves each clip further (a time-shift augmentation,
    cropped at the window's edges, done here in the same copy and with the pad's own fill). Padding is zeros,
    or for pad_mode "noise" uniform noise between the min and max of the clip's quietest 10 ms: its own
    background, so the pad looks like its silence and never leaves the clip's amplitude range. Samples past a
    clip's length are never used.
    In evaluation without a generator the noise is one fixed seeded pattern shared by every row, so a
    clip's features never depend on the call or on the other clips in the batch.
    """
    B, L = clips.shape
    n = cfg.num_samples
    dev = clips.device
    gdev = generator.device if generator is not None else dev
    lengths = lengths.to(device=dev, dtype=torch.long).clamp(0, L)
    slack = n - lengths
    if train:
        u = torch.rand(B, generator=generator, device=gdev).to(dev)
        lo, hi = slack.clamp(max=0), slack.clamp(min=0)
        offset = lo + (u * (hi - lo + 1)).long().clamp(max=hi - lo)
    else:
        offset = torch.div(slack, 2, rounding_mode="floor")
    if shift is not None:
        offset = offset + shift.to(device=dev, dtype=torch.long)
    if cfg.pad_mode == "noise":
        lo, hi = _noise_floor(clips, lengths, max(1, cfg.sample_rate // 100))
        if train or generator is not None:
            out = torch.rand(B, n, generator=generator, device=gdev, dtype=clips.dtype).to(dev)
        else:
            fixed = torch.Generator().manual_seed(0)
            out = torch.rand(1, n, generator=fixed, dtype=clips.dtype).to(dev).expand(B, n).clone()
        out.mul_((hi - lo).view(B, 1)).add_(lo.view(B, 1))
    else:
        out = clips.new_zeros(B, n)
    start = offset.clamp(0, n)
    return copy_spans(out, clips, start, start - offset, (offset + lengths).clamp(max=n) - start)


def copy_spans(
    out: torch.Tensor, src: torch.Tensor, out_start: torch.Tensor, src_start: torch.Tensor, length: torch.Tensor
) -> torch.Tensor:
    """out[i, out_start[i]:][:length[i]] = src[i, src_start[i]:][:length[i]] for each row (none where length <= 0).

    One slice copy per row, cheaper than gathering every sample through an index tensor; on the CPU as numpy
    slices, which cost less per row than torch slice assignment.
    """
    spans = zip(out_start.tolist(), src_start.tolist(), length.tolist())
    if out.device.type == "cpu" and src.device.type == "cpu" and out.dtype == src.dtype:
        o, x = out.numpy(), src.detach().numpy()
    else:
        o, x = out, src
    for i, (a, b, m) in enumerate(spans):
        if m > 0:
            o[i, a : a + m] = x[i, b : b + m]
    return out


def load_clip(
    path: str | os.PathLike, cfg: AudioConfig, train: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One file as the model sees it: (num_samples,) float32, decoded, energy-cropped and fitted (centred)."""
    x, n = prepare(load_audio(path, cfg.sample_rate, cfg.max_seconds, cfg.resample_quality), cfg)
    return fit_batch(torch.from_numpy(x.copy())[None], torch.tensor([n]), cfg, train, generator)[0]
