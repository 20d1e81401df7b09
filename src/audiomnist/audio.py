"""Audio front-end: read any file soundfile can (and, through ffmpeg where it is installed, what soundfile cannot:
m4a, AAC, AMR, WebM, WMA), downmix, resample (soxr), fit to a fixed window.

Nothing here needs torch, so inference from an .onnx model runs without it: `fit_windows` is the evaluation
placement in numpy; `placement.fit_batch` is the batched torch version training uses (tested to agree exactly).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from .config import option
from .decode import FfmpegError, ffmpeg_decode, libsndfile_reason, unreadable_detail
from .errors import AudioError, ConfigError
from .sources import path_problem

PAD_MODES = ("zeros", "noise")
CACHE_DTYPES = ("int16", "float16")
RESAMPLE_QUALITIES = ("VHQ", "HQ", "MQ", "LQ")  # "QQ" is left out: it does no anti-aliasing at all


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = option(16000, "rate every clip is resampled to (Hz)", aliases=("--sample-rate",))
    duration_ms: int = option(
        1000, "window the model sees (ms); longer clips are cropped on their energy", aliases=("--duration-ms",)
    )
    # "zeros" is the original v1/v2 padding; "noise" (v3) pads with noise within the clip's own range.
    pad_mode: str = option(
        "zeros", "how a short clip is padded to the window", choices=PAD_MODES, aliases=("--pad-mode",)
    )
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


def read_audio(path: str | os.PathLike, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the rate: soundfile, else ffmpeg; AudioError naming the cause otherwise."""
    try:
        with sf.SoundFile(os.fsencode(path)) as f:  # bytes: names that are not valid UTF-8 open too
            sr = f.samplerate
            frames = f.frames
            if max_seconds is not None:
                frames = min(frames, math.ceil(max_seconds * sr))
            if f.subtype == "PCM_16":  # numpy scales int16 faster than libsndfile does, to identical values
                return np.multiply(f.read(frames, dtype="int16", always_2d=True), np.float32(1 / 32768)), sr
            return f.read(frames, dtype="float32", always_2d=True), sr
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        problem = path_problem(path)  # libsndfile says "System error" for a denied permission or a symlink loop
        if problem == "no such file or folder":
            raise AudioError(path, "file not found") from None
        if problem is not None:
            raise AudioError(path, problem) from None
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise AudioError(path, "empty file (0 bytes)") from None
        reason = libsndfile_reason(e)
    try:
        return ffmpeg_decode(path, max_seconds)
    except FfmpegError as e:
        raise AudioError(path, f"not a readable audio file ({reason}{unreadable_detail(path, e)})") from None


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    max_seconds: float | None = None,
    quality: str = "HQ",
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Decode `path` to float32 mono at `sample_rate`; read at most `max_seconds` from the start.

    Raises AudioError for anything a model should not see: unreadable, empty, NaN/inf samples (unless
    `allow_nonfinite`: prediction answers "no digit" for those instead of refusing the file).
    """
    x, sr = read_audio(path, max_seconds)
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


def full_scale(x: np.ndarray) -> np.ndarray:
    """Float audio beyond +-1 scaled back into range: the features ignore level, but float32 power would overflow."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    return x / peak if peak > 1.0 else x


# Clips that cannot hold a spoken digit get "no digit" and one of these reasons instead of a confident guess.
TOO_SHORT, NO_SPEECH, BAD_SAMPLES = "too short", "no speech", "bad samples"
MIN_SIGNAL_S = 0.1  # the shortest digits ("six", "eight") last ~250 ms; under 100 ms of signal is a click or a cut
MIN_ACTIVE_S = 0.05  # of it above the speech floor: half, as the quietest short FSDD words have only 100 ms there
MIN_SPEECH_DBFS = -60.0  # a 10 ms frame quieter is silence or hiss; the quietest FSDD word peaks at -48 dBFS a frame
MAX_ABS_SAMPLE = 1e3  # float files: beyond this a sample is corruption, not loud speech (full scale is 1)
FRAME_S = 0.01


# A spoken digit has a vowel: some voiced, periodic sound. Hiss, fans, wind or a burst of white noise have none,
# however loud. YIN's measure (de Cheveigne & Kawahara 2002) at its lowest over the lags of a voice's pitch: near 0
# for a periodic frame, near 1 for white noise. Measured in experiments/no-digit/README.md ("A pitch test...").
VOICING_RATE = 8000  # enough for pitches up to 500 Hz, and cheap
PITCH_HZ = (60.0, 500.0)  # the lowest male to the highest child voice
PITCH_FRAME_S = 0.04  # two periods of the lowest pitch
MAX_APERIODICITY = 0.6  # a frame is voiced below this
MIN_VOICED_FRAMES = 3  # 30 ms: one voiced frame can be chance
_BLOCK_FRAMES = 512  # frames per batch of FFTs: bounded memory for long recordings
_FIRST_FRAMES = 16  # voiced_frames measures this many loud frames at a time: speech has a vowel among its first


def _pitch_geometry(sample_rate: int) -> tuple[int, int, int, int]:
    """(frame, hop, shortest lag, longest lag) in samples at `sample_rate`."""
    win, hop = round(PITCH_FRAME_S * sample_rate), max(1, round(FRAME_S * sample_rate))
    return win, hop, max(1, int(sample_rate / PITCH_HZ[1])), int(sample_rate / PITCH_HZ[0])


def _frame_levels(x: np.ndarray, win: int, hop: int, tmax: int) -> np.ndarray:
    """dBFS (mean removed) of each win-long frame every hop that has tmax samples after it."""
    n = (x.size - win - tmax) // hop + 1
    c1, c2 = (np.concatenate([[0.0], np.cumsum(v)]) for v in (x, np.square(x)))
    starts = np.arange(n) * hop
    mean = (c1[starts + win] - c1[starts]) / win
    return 10 * np.log10(np.maximum((c2[starts + win] - c2[starts]) / win - mean**2, 0.0) + 1e-20)


def _lowest_cmnd(x: np.ndarray, starts: np.ndarray, win: int, tmin: int, tmax: int) -> np.ndarray:
    """YIN's cumulative-mean-normalised difference of the frames at `starts`, at its minimum over lags tmin..tmax."""
    span = win + tmax
    fr = x[starts[:, None] + np.arange(span)[None, :]]
    size = 1 << int(np.ceil(np.log2(span)))  # lags up to tmax of a win-long head never wrap around
    # d(t) = sum_j (x_j - x_j+t)^2 over the frame = energy at 0 + energy at t - 2 * cross-correlation at t
    corr = np.fft.irfft(np.conj(np.fft.rfft(fr[:, :win], size)) * np.fft.rfft(fr, size), size)[:, : tmax + 1]
    c = np.concatenate([np.zeros((len(fr), 1)), np.cumsum(np.square(fr), axis=1)], axis=1)
    energy = c[:, win : win + tmax + 1] - c[:, : tmax + 1]
    d = np.maximum(energy[:, :1] + energy - 2 * corr, 0.0)[:, 1:]
    running = np.cumsum(d, axis=1) / np.arange(1, tmax + 1)
    return np.where(running > 0, d / np.maximum(running, 1e-300), 1.0)[:, tmin - 1 :].min(axis=1)


def _padded(x: np.ndarray, win: int, tmax: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return np.pad(x, (0, max(0, win + tmax - x.size)))


def aperiodicity(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per FRAME_S hop, YIN's cumulative-mean-normalised difference at its minimum over the lags of PITCH_HZ, and
    the frame's level in dBFS (mean removed). A clip shorter than a frame and a lag is zero-padded."""
    win, hop, tmin, tmax = _pitch_geometry(sample_rate)
    x = _padded(x, win, tmax)
    level = _frame_levels(x, win, hop, tmax)
    starts = np.arange(len(level)) * hop
    out = [
        _lowest_cmnd(x, starts[b : b + _BLOCK_FRAMES], win, tmin, tmax) for b in range(0, len(starts), _BLOCK_FRAMES)
    ]
    return np.concatenate(out), level


def voiced_frames(x: np.ndarray, sample_rate: int, enough: int = MIN_VOICED_FRAMES) -> int:
    """Frames (FRAME_S hops) above the speech floor with a pitch, at VOICING_RATE; at most `enough`, where the count
    stops (only frames above the floor are measured, a few at a time)."""
    if sample_rate > VOICING_RATE:
        x = soxr.resample(np.asarray(x, np.float64), sample_rate, VOICING_RATE)
        sample_rate = VOICING_RATE
    win, hop, tmin, tmax = _pitch_geometry(sample_rate)
    x = _padded(x, win, tmax)
    loud = np.flatnonzero(_frame_levels(x, win, hop, tmax) >= MIN_SPEECH_DBFS) * hop
    count = 0
    for b in range(0, len(loud), _FIRST_FRAMES):
        count += int(np.count_nonzero(_lowest_cmnd(x, loud[b : b + _FIRST_FRAMES], win, tmin, tmax) < MAX_APERIODICITY))
        if count >= enough:
            break
    return min(count, enough)


def bad_samples(wave: np.ndarray) -> bool:
    """Whether a clip holds a non-finite or absurd sample (audio_problem's BAD_SAMPLES, its first and cheapest test)."""
    x = np.asarray(wave).reshape(-1)
    return bool(x.size) and (not np.isfinite(x).all() or float(np.abs(x).max()) > MAX_ABS_SAMPLE)


def audio_problem(wave: np.ndarray, sample_rate: int) -> str | None:
    """Why a mono clip cannot hold a spoken digit (TOO_SHORT, NO_SPEECH, BAD_SAMPLES), or None if it can."""
    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    if bad_samples(x):
        return BAD_SAMPLES
    frame = max(1, round(FRAME_S * sample_rate))
    if x.size < MIN_SIGNAL_S * sample_rate:
        return TOO_SHORT
    frames = x[: x.size // frame * frame].reshape(-1, frame)
    level = 10 * np.log10(np.mean(np.square(frames - frames.mean(axis=1, keepdims=True)), axis=1) + 1e-20)
    loud = int(np.count_nonzero(level >= MIN_SPEECH_DBFS))
    if loud == 0:
        return NO_SPEECH
    if loud * frame < MIN_ACTIVE_S * sample_rate:
        return TOO_SHORT
    return NO_SPEECH if voiced_frames(x, sample_rate) < MIN_VOICED_FRAMES else None


def crop_on_energy(x: np.ndarray, n: int) -> np.ndarray:
    """The n-sample window of `x` with the most energy (x itself if not longer than n).

    Real recordings have leading silence, so cutting at the start would lose the word.
    """
    if len(x) <= n:
        return x
    c = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
    start = int(np.argmax(c[n:] - c[:-n]))
    return x[start : start + n]


# A recording's word is found by its loudness: a FRAME_S frame is part of it when it is within 40 dB of the clip's
# loudest frame and at least 6 dB over its quietest (the recording's own background). Powers, not dB, so the web
# page (web/offline.js) compares the very same float64 numbers.
SPEECH_BELOW_PEAK = 1e-4
SPEECH_OVER_FLOOR = 4.0


def speech_span(x: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """(start, end) samples of a clip's word: from its first frame loud enough (SPEECH_BELOW_PEAK,
    SPEECH_OVER_FLOOR) to the end of its last; a clip shorter than one frame, or with no frame 6 dB over its
    quietest, is all word."""
    frame = max(1, round(FRAME_S * sample_rate))
    whole = x.size // frame * frame
    if whole == 0:
        return 0, x.size
    c = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
    power = c[frame : whole + 1 : frame] - c[:whole:frame]
    peak, floor = power.max(), power.min() * SPEECH_OVER_FLOOR
    if floor > peak:  # no frame stands out from the others: no quiet stretch to leave out
        return 0, x.size
    loud = np.flatnonzero(power >= max(peak * SPEECH_BELOW_PEAK, floor))
    return int(loud[0]) * frame, (int(loud[-1]) + 1) * frame


def centre_on_speech(x: np.ndarray, n: int, sample_rate: int) -> tuple[np.ndarray, int | None]:
    """At most n samples of a recording around its word (speech_span) and the index among them that a window's
    centre must hold, so that silence before or after the word does not push it off centre (training windows hold
    trimmed clips, centred). Speech longer than n (several words) keeps crop_on_energy's loudest n samples and
    centres them (None)."""
    start, end = speech_span(x, sample_rate)
    if end - start > n:
        return crop_on_energy(x, n), None
    first = max(0, (start + end) // 2 - n // 2)
    return x[first : first + n], (start + end) // 2 - first


def prepare(x: np.ndarray, cfg: AudioConfig) -> tuple[np.ndarray, int]:
    """A decoded clip as the cache stores it: energy-cropped to at most num_samples, left-aligned."""
    x = crop_on_energy(x, cfg.num_samples)
    return x, len(x)


def noise_floor(x: np.ndarray, frame: int) -> tuple[float, float]:
    """Min and max of the clip's quietest whole `frame` (lowest peak-to-peak), i.e. its own silence.

    A clip shorter than one frame uses all of its samples; an empty one gets (0, 0). placement.fit_batch does the
    same per row of a batch.
    """
    if x.size == 0:
        return 0.0, 0.0
    if x.size < frame:
        return float(x.min()), float(x.max())
    frames = x[: x.size // frame * frame].reshape(-1, frame)
    lo, hi = frames.min(axis=1), frames.max(axis=1)
    q = int(np.argmin(hi - lo))
    return float(lo[q]), float(hi[q])


def in_own_silence(pattern: np.ndarray, x: np.ndarray, frame: int) -> np.ndarray:
    """A fixed pattern in [0, 1) (eval_noise) scaled into the clip's own silence (noise_floor over `frame`
    samples): what a window (pad_mode "noise") or an utterance (ctc.pad_edges) is padded with."""
    lo, hi = (np.float32(v) for v in noise_floor(x, frame))
    return pattern * (hi - lo) + lo


def eval_noise(n: int) -> np.ndarray:
    """The fixed pad pattern of evaluation, uniform in [0, 1): torch.rand(1, n) of a generator seeded with 0.

    torch's CPU generator is the standard MT19937 and turns each 32-bit draw into a float32 from its low 24 bits;
    numpy's legacy seeding gives the same draws, so this needs no torch (test_audio checks it against torch).
    """
    raw = np.random.RandomState(0)._bit_generator.random_raw(n)
    return (raw & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)


def fit_windows(clips: list[np.ndarray], cfg: AudioConfig, centres: list[int | None] | None = None) -> np.ndarray:
    """Clips at the model's rate -> (B, num_samples) float32 windows, placed as evaluation does: centred, a longer
    clip cropped centred, pad zeros or (pad_mode "noise") the fixed pattern scaled into the clip's own silence.
    `centres`: per clip, the sample to put at the window's centre instead (centre_on_speech; None: the clip's).

    Equal to placement.fit_batch(..., train=False) without a generator on the same clips and no centres.
    """
    n = cfg.num_samples
    out = np.zeros((len(clips), n), dtype=np.float32)
    if cfg.pad_mode == "noise" and clips:
        noise = eval_noise(n)
        frame = max(1, cfg.sample_rate // 100)
    for i, clip in enumerate(clips):
        x = np.asarray(clip, dtype=np.float32).reshape(-1)
        if cfg.pad_mode == "noise":
            out[i] = in_own_silence(noise, x, frame)
        centre = None if centres is None else centres[i]
        offset = (n - x.size) // 2 if centre is None else n // 2 - centre
        start = min(max(offset, 0), n)
        length = min(offset + x.size, n) - start
        if length > 0:
            out[i, start : start + length] = x[start - offset : start - offset + length]
    return out
