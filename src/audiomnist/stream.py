"""Streaming recognition: cut a live audio stream into spoken digits and classify each one.

The microphone (`audiomnist listen --continuous`) and a recording (`audiomnist listen --input FILE`) take exactly
the same path: blocks of any size at any rate -> streaming resampler -> `Segmenter` (energy VAD) -> `Classifier`.
No audio-device code lives here.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

try:
    from scipy.signal import butter, sosfilt
except ImportError:  # the base install has no scipy: the same filter in numpy (a Python loop, small next to the model)
    butter = sosfilt = None

from .audio import read_audio
from .errors import AudioError
from .infer import Classifier, Prediction


@dataclass(frozen=True)
class VadConfig:
    """Energy voice-activity detection. Levels are frame RMS in dB; "floor" is the tracked background level.

    The defaults suit one digit at a time with pauses of 0.3 s or more, from a close microphone or a clean recording.
    """

    frame_ms: float = 10.0  # analysis frame
    onset_db: float = 10.0  # a frame above floor + onset_db counts towards starting a segment
    release_db: float = 6.0  # inside a segment, frames above floor + release_db keep it going (quiet word endings)
    min_level_db: float = -65.0  # frames quieter than this (dBFS) are never speech, whatever the floor
    start_frames: int = 3  # consecutive onset frames that open a segment (rejects single-frame clicks)
    end_silence_ms: float = 250.0  # this much quiet closes a segment: longer than the stop gaps inside "six", "eight"
    pre_roll_ms: float = 150.0  # how far before the onset a soft start (f, s, th above release_db) is looked for
    margin_ms: float = 20.0  # background kept on each side of a word: the model was trained on tightly cut clips
    min_segment_ms: float = 60.0  # segments whose active part is shorter are dropped (clicks, pops)
    max_segment_ms: float | None = None  # longer speech is split; None: the model's window (1 s for the shipped model)
    floor_window_s: float = 3.0  # the floor is the lowest smoothed level of the last floor_window_s: it follows
    # rising noise within that time, falling noise at once, and never climbs onto a word shorter than the window
    floor_smooth_ms: float = 50.0  # levels are averaged over about this long before taking the floor's minimum
    highpass_hz: float = 100.0  # levels are measured above this: hum, rumble and drift are not speech (0: off)

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.start_frames < 1 or self.floor_window_s <= 0 or self.floor_smooth_ms < 0:
            raise ValueError(f"VadConfig: need positive frame_ms, start_frames, floor_window_s, got {self}")
        if self.release_db > self.onset_db:
            raise ValueError(f"VadConfig: release_db ({self.release_db}) must not exceed onset_db ({self.onset_db})")
        if min(self.end_silence_ms, self.pre_roll_ms, self.margin_ms, self.min_segment_ms) < 0:
            raise ValueError(f"VadConfig: durations must not be negative, got {self}")
        if self.max_segment_ms is not None and self.max_segment_ms < self.min_segment_ms:
            raise ValueError(f"VadConfig: max_segment_ms ({self.max_segment_ms}) is shorter than min_segment_ms")


@dataclass(frozen=True, eq=False)
class Segment:
    """A stretch of the stream that the VAD took for one word; start/end are sample positions in the stream."""

    audio: np.ndarray
    start: int
    sample_rate: int

    @property
    def end(self) -> int:
        return self.start + len(self.audio)

    @property
    def seconds(self) -> tuple[float, float]:
        return self.start / self.sample_rate, self.end / self.sample_rate


@dataclass(frozen=True)
class Detection:
    """One digit heard in a stream: when (seconds from the stream's start) and what the model made of it."""

    start: float
    end: float
    prediction: Prediction

    @property
    def label(self) -> str | None:
        return self.prediction.label


def highpass_sos(hz: float, fs: float) -> np.ndarray:
    """scipy.signal.butter(2, hz, "highpass", fs=fs, output="sos") in closed form (bilinear transform, prewarped)."""
    k = math.tan(math.pi * hz / fs)
    norm = 1 / (1 + math.sqrt(2) * k + k * k)
    return np.array([[norm, -2 * norm, norm, 1.0, 2 * (k * k - 1) * norm, (1 - math.sqrt(2) * k + k * k) * norm]])


def sosfilt_numpy(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy.signal.sosfilt(sos, x, zi=zi) for float64 x: each section in transposed direct form II."""
    y = np.array(x, dtype=np.float64)
    zi = np.array(zi, dtype=np.float64)
    for s, (b0, b1, b2, _, a1, a2) in enumerate(sos.tolist()):
        z0, z1 = zi[s]
        out = y.tolist()
        for i, v in enumerate(out):
            o = b0 * v + z0
            z0, z1 = b1 * v - a1 * o + z1, b2 * v - a2 * o
            out[i] = o
        y, zi[s] = np.array(out), (z0, z1)
    return y, zi


class Segmenter:
    """Feed float32 chunks of any size; get back the finished segments. Output does not depend on chunk sizes.

    A segment opens after start_frames frames above floor + onset_db, reaches back (at most pre_roll_ms) over the
    frames just before that stay above floor + release_db, ends after end_silence_ms below floor + release_db, and
    keeps margin_ms on both sides of its active part. State: the partial frame, the recent frames, the floor's window
    and the open segment.
    """

    def __init__(self, sample_rate: int, config: VadConfig = VadConfig(), window_samples: int | None = None):
        cfg = config
        ms = sample_rate / 1000
        self.sample_rate = sample_rate
        self.config = cfg
        self.frame = max(1, round(cfg.frame_ms * ms))
        count = lambda t: max(0, math.ceil(t * ms / self.frame - 1e-9))  # noqa: E731  (frames covering t ms)
        self.pre_roll = count(cfg.pre_roll_ms)
        self.margin = count(cfg.margin_ms)
        self.end_silence = max(1, count(cfg.end_silence_ms))
        self.min_active = count(cfg.min_segment_ms)
        self.floor_frames = max(1, count(cfg.floor_window_s * 1000))
        max_samples = window_samples if cfg.max_segment_ms is None else round(cfg.max_segment_ms * ms)
        if max_samples is None:
            raise ValueError("Segmenter: set VadConfig.max_segment_ms or pass window_samples (the model's window)")
        self.max_frames = max(self.min_active, cfg.start_frames, max_samples // self.frame, 1)
        self.smoothing = math.exp(-cfg.frame_ms / cfg.floor_smooth_ms) if cfg.floor_smooth_ms > 0 else 0.0
        use_hp = 0 < cfg.highpass_hz < sample_rate / 2
        design = highpass_sos if butter is None else lambda hz, fs: butter(2, hz, "highpass", fs=fs, output="sos")
        self.highpass = design(cfg.highpass_hz, sample_rate) if use_hp else None
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next chunk is the start of a new stream."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._index = 0  # frames seen
        self._floor: deque[tuple[int, float]] = deque()  # (frame index, level), levels increasing: a sliding minimum
        self._power = -1.0  # smoothed frame power; negative before the first frame
        self._zi = None if self.highpass is None else np.zeros((len(self.highpass), 2))
        self._recent: deque[tuple[np.ndarray, bool]] = deque(maxlen=self.pre_roll + self.config.start_frames)
        self._onsets = 0  # consecutive frames above the onset level
        self._open: list[tuple[np.ndarray, bool]] | None = None  # (frame, active) of the open segment
        self._start = 0  # stream frame index of the open segment's first frame
        self._first = 0  # first and one past the last active frame, counted into the open segment
        self._last = 0
        self._quiet = 0

    @property
    def floor_db(self) -> float:
        """The current background level (dBFS); +inf before the first frame."""
        return self._floor[0][1] if self._floor else math.inf

    def feed(self, chunk: np.ndarray) -> list[Segment]:
        """Take the next chunk of the stream (mono samples at sample_rate); return the segments it completed."""
        x = np.concatenate([self._pending, np.asarray(chunk, dtype=np.float32).reshape(-1)])
        n = len(x) // self.frame
        self._pending = x[n * self.frame :].copy()
        if n == 0:
            return []
        frames = x[: n * self.frame].reshape(n, self.frame)
        y = frames.astype(np.float64).reshape(-1)
        if self.highpass is not None:
            y, self._zi = (sosfilt_numpy if sosfilt is None else sosfilt)(self.highpass, y, zi=self._zi)
        y = y.reshape(n, self.frame)
        levels = 10 * np.log10(np.einsum("ij,ij->i", y, y) / self.frame + 1e-12)
        done = []
        for f, level in zip(frames, levels.tolist()):
            seg = self._step(f.copy(), level)
            if seg is not None:
                done.append(seg)
        return done

    def pending(self) -> Segment | None:
        """The open segment so far (None when none is open): what a string model decodes before the segment ends."""
        if not self._open:
            return None
        return Segment(np.concatenate([f for f, _ in self._open]), self._start * self.frame, self.sample_rate)

    def flush(self) -> list[Segment]:
        """End of stream: close the open segment (the partial last frame is dropped)."""
        seg = self._close() if self._open is not None else None
        self._onsets = 0
        return [seg] if seg is not None else []

    def _step(self, frame: np.ndarray, level: float) -> Segment | None:
        cfg = self.config
        floor = self.floor_db
        self._track_floor(level)
        self._index += 1
        audible = level >= cfg.min_level_db
        active = audible and level > floor + cfg.release_db
        if self._open is None:
            self._recent.append((frame, active))
            self._onsets = self._onsets + 1 if audible and level > floor + cfg.onset_db else 0
            if self._onsets >= cfg.start_frames:
                self._open_at_onset()
            return None
        self._open.append((frame, active))
        if active:
            self._last = len(self._open)
            self._quiet = 0
        else:
            self._quiet += 1
        if self._quiet >= self.end_silence:
            return self._close()
        if len(self._open) >= self.max_frames:
            return self._close(split=self._quiet == 0)
        return None

    def _open_at_onset(self) -> None:
        """Open a segment whose onset frames end now, reaching back over the active frames just before them."""
        recent = list(self._recent)
        onset = len(recent) - self.config.start_frames
        first = onset
        while first > 0 and recent[first - 1][1]:
            first -= 1
        begin = max(0, first - self.margin)
        self._open = recent[begin:]
        self._start = self._index - len(self._open)
        self._first, self._last, self._quiet = first - begin, len(self._open), 0
        self._recent.clear()

    def _close(self, split: bool = False) -> Segment | None:
        """Emit the open segment, trimmed to margin after its last active frame; None if its active part is too short.

        split: the segment reached max length while active, so the following frames continue as a new segment.
        Segments never overlap: frames after the kept part become the next segment's pre-roll.
        """
        frames, start, active = self._open, self._start, self._last - self._first
        keep = len(frames) if split else min(len(frames), self._last + self.margin)
        self._open, self._onsets = None, 0
        self._recent.clear()
        if split:
            self._open, self._start, self._first, self._last, self._quiet = [], self._index, 0, 0, 0
        else:
            self._recent.extend(frames[keep:])
        if active < self.min_active:
            return None
        return Segment(np.concatenate([f for f, _ in frames[:keep]]), start * self.frame, self.sample_rate)

    def _track_floor(self, level: float) -> None:
        p = 10 ** (level / 10)
        self._power = p if self._power < 0 else self.smoothing * self._power + (1 - self.smoothing) * p
        level = 10 * math.log10(self._power)
        q = self._floor
        while q and q[-1][1] >= level:
            q.pop()
        q.append((self._index, level))
        if q[0][0] <= self._index - self.floor_frames:
            q.popleft()


def transcribe(
    chunks: Iterable[np.ndarray],
    classifier: Classifier,
    sample_rate: int | None = None,
    config: VadConfig = VadConfig(),
) -> Iterator[Detection]:
    """Digits heard in a stream of mono float32 chunks at `sample_rate` (None: the model's rate), as they end.

    Chunks at another rate go through one streaming soxr resampler, so block edges leave no trace.
    """
    sr_model = classifier.sample_rate
    sr = sr_model if sample_rate is None else int(sample_rate)
    seg = Segmenter(sr_model, config, window_samples=classifier.cfg.audio.num_samples)
    quality = classifier.cfg.audio.resample_quality
    rs = None if sr == sr_model else soxr.ResampleStream(sr, sr_model, 1, dtype="float32", quality=quality)

    def heard(segments: list[Segment]) -> Iterator[Detection]:
        for s in segments:
            start, end = s.seconds
            yield Detection(start, end, classifier.predict(s.audio, sr_model))

    for chunk in chunks:
        x = np.asarray(chunk, dtype=np.float32)
        x = x.mean(axis=1) if x.ndim == 2 else x
        if rs is not None:
            x = rs.resample_chunk(np.ascontiguousarray(x), last=False)
        yield from heard(seg.feed(x))
    if rs is not None:
        yield from heard(seg.feed(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)))
    yield from heard(seg.flush())


def read_blocks(path: str | os.PathLike, block_ms: float = 100.0) -> tuple[int, Iterator[np.ndarray]]:
    """A file's sample rate and a generator of its mono float32 blocks of block_ms, read lazily like a microphone's.

    Raises AudioError when the file cannot be opened; a block with NaN/inf samples raises AudioError when reached.
    """
    try:
        f = sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        x, sr = read_audio(path, None)  # other formats through ffmpeg, whole; AudioError with the cause otherwise
        if len(x) == 0:
            raise AudioError(path, "no audio samples (0 frames)") from None
        return sr, _blocks_of(path, x, sr, block_ms)
    if f.frames == 0:
        f.close()
        raise AudioError(path, "no audio samples (0 frames)")
    size = max(1, round(f.samplerate * block_ms / 1000))

    def blocks() -> Iterator[np.ndarray]:
        with f:
            # A file libsndfile cannot seek in (GSM 6.10 in a WAV, as phones and sox write it) needs its length.
            frames = -1 if f.seekable() else f.frames
            for b in f.blocks(blocksize=size, frames=frames, dtype="float32", always_2d=True):
                b = b.mean(axis=1) if b.shape[1] > 1 else b[:, 0]
                if not np.isfinite(b).all():
                    raise AudioError(path, f"NaN or infinite samples near {f.tell() / f.samplerate:.2f} s")
                yield b

    return f.samplerate, blocks()


def _blocks_of(path: str | os.PathLike, x: np.ndarray, sr: int, block_ms: float) -> Iterator[np.ndarray]:
    """read_blocks' blocks of audio already decoded, (frames, channels)."""
    size = max(1, round(sr * block_ms / 1000))
    for i in range(0, len(x), size):
        b = x[i : i + size].mean(axis=1)
        if not np.isfinite(b).all():
            raise AudioError(path, f"NaN or infinite samples near {i / sr:.2f} s")
        yield b


def transcribe_file(
    path: str | os.PathLike, classifier: Classifier, config: VadConfig = VadConfig(), block_ms: float = 100.0
) -> Iterator[Detection]:
    """A recording through exactly the live path: read in block_ms blocks at its own rate, then `transcribe`."""
    sr, blocks = read_blocks(path, block_ms)
    return transcribe(blocks, classifier, sr, config)


def join_labels(labels: Iterable[str]) -> str:
    """Digits as one string ("4155"); multi-character labels separated by spaces."""
    labels = list(labels)
    return "".join(labels) if all(len(s) == 1 for s in labels) else " ".join(labels)
