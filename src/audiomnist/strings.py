"""Training and test material for the digit-string model: spoken clips named by what they say, and strings of digits
assembled from isolated clips of one speaker.

A clip is `{digits}_{speaker}_{take}.wav` (FSDD's layout, in any audio format; `audiomnist data synth --strings`
writes whole strings the same way), so an isolated digit is a string of length one. `assemble` joins one speaker's
isolated clips the way people say a number without pausing: words touch or overlap by a few tens of milliseconds
(cross-faded), sometimes with a short gap, at the speaker's tempo changed a little, with silence and noise around,
sometimes in a room. The audio is numpy; the clips of a folder are decoded once and kept under data_home()/cache
(the waveform cache holds fixed-length windows, strings need whole clips of any length).
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .audio import load_audio, resample
from .catalog import audio_candidates
from .config import option
from .errors import AudioError, AudiomnistError, ConfigError
from .paths import atomic_write, data_home, short_hash
from .sources import path_problem
from .synth import coloured_noise, room_impulse, tilt, trim

NAME = re.compile(r"^(\d{1,12})_([^_/]+)_(\d+)$")  # a file's stem
# A non-digit clip's speaker is the middle field of {anything}_{speaker}_{take}, else the whole name.
NEGATIVE_NAME = re.compile(r"^[^_]+_([^_/]+)_[^_/]+$")
CACHE_VERSION = 1
WORD = "w"  # a non-digit clip in a word-class model's training text


@dataclass(frozen=True)
class Clips:
    """Decoded clips at one rate: audio (float32, each trimmed to its speech), what each says, who says it."""

    audio: list[np.ndarray]
    text: list[str]
    speaker: list[str]
    source: list[int]  # index of the folder each clip came from

    def __len__(self) -> int:
        return len(self.text)

    def select(self, keep: np.ndarray) -> Clips:
        idx = np.flatnonzero(keep)
        return Clips([self.audio[i] for i in idx], [self.text[i] for i in idx],
                     [self.speaker[i] for i in idx], [self.source[i] for i in idx])  # fmt: skip


def _audio_paths(folder: str | os.PathLike) -> list[Path]:
    """Readable audio files under `folder` by the rule of every other entry point (catalog.audio_candidates),
    sorted; the refused and unreadable ones are listed on stderr, one line each with the cause."""
    root = Path(folder)
    if not root.is_dir():
        raise AudiomnistError(f"{root}: no such folder")
    rels, refused, _ = audio_candidates(root)
    paths = []
    for path in sorted(root / rel for rel in rels):
        if problem := path_problem(path):  # a broken link or a loop: its own cause, not a crash at stat()
            refused.append((str(path), problem))
        else:
            paths.append(path)
    for name, why in refused:
        print(f"skipped: {name}: {why}", file=sys.stderr)
    return paths


def list_clips(folder: str | os.PathLike) -> list[tuple[Path, str, str]]:
    """(path, digits, speaker) of every audio file under `folder` named {digits}_{speaker}_{take} (FSDD's flat
    layout and AudioMNIST's folder per speaker alike), sorted by path; other names are counted on stderr."""
    out, other = [], []
    for path in _audio_paths(folder):
        m = NAME.match(path.stem)
        if m:
            out.append((path, m.group(1), m.group(2)))
        else:
            other.append(path.name)
    if not out:
        raise AudiomnistError(
            f"{folder}: no audio files named {{digits}}_{{speaker}}_{{take}} (like 4155_jackson_0.wav)"
        )
    if other:
        print(f"{folder}: {len(other)} audio files not named {{digits}}_{{speaker}}_{{take}} left out "
              f"(e.g. {other[0]})", file=sys.stderr)  # fmt: skip
    return out


def list_negatives(folder: str | os.PathLike) -> list[tuple[Path, str, str]]:
    """(path, "", speaker) of every audio file under `folder`, whatever it says (not an English digit)."""
    paths = _audio_paths(folder)
    if not paths:
        raise AudiomnistError(f"{folder}: no audio files")
    return [(p, "", m.group(1) if (m := NEGATIVE_NAME.match(p.stem)) else p.stem) for p in paths]


def _decode(paths: list[Path], sample_rate: int, progress: bool) -> tuple[list[np.ndarray], list[str]]:
    audio, errors = [], []
    for p in tqdm(paths, desc="decode", unit="file", disable=not (progress and sys.stderr.isatty())):
        try:
            x = load_audio(p, sample_rate)
            audio.append(trim(x, sample_rate) if np.abs(x).max() > 0 else x)
        except AudioError as e:
            errors.append(str(e))
            audio.append(np.zeros(0, np.float32))
    return audio, errors


def load_folder(
    folder: str | os.PathLike, sample_rate: int, progress: bool = True, lister=list_clips
) -> tuple[list, list[str]]:
    """(rows, audio) of a folder's clips (as `lister` finds them) at `sample_rate`, decoded once and cached;
    unreadable files are listed on stderr (one line each) and left out."""
    rows = lister(folder)
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p, _, _ in rows]
    key = short_hash(str(Path(folder).resolve()), stats, sample_rate, CACHE_VERSION, lister.__name__)
    cache = data_home() / "cache" / f"strings-{key}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            flat, ends = z["audio"], z["ends"]
        audio = np.split(flat, ends[:-1])
    else:
        audio, errors = _decode([p for p, _, _ in rows], sample_rate, progress)
        for message in errors:
            print(f"skipped: {message}", file=sys.stderr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache, "wb") as f:
            np.savez(f, audio=np.concatenate(audio), ends=np.cumsum([len(a) for a in audio]))
    keep = [i for i, a in enumerate(audio) if len(a)]
    return [rows[i] for i in keep], [audio[i] for i in keep]


def load_clips(
    folders: list[str] | tuple[str, ...], sample_rate: int, progress: bool = True, lister=list_clips
) -> Clips:
    """Every folder's clips (list_clips: named digits; list_negatives: non-digit clips, text "")."""
    audio, text, speaker, source = [], [], [], []
    for i, folder in enumerate(folders):
        rows, waves = load_folder(folder, sample_rate, progress, lister)
        audio += waves
        text += [t for _, t, _ in rows]
        speaker += [s for _, _, s in rows]
        source += [i] * len(rows)
    return Clips(audio, text, speaker, source)


@dataclass(frozen=True)
class AssemblyConfig:
    """How isolated clips become a string. Gaps are from the end of one word to the start of the next (negative:
    the words overlap, cross-faded)."""

    min_digits: int = option(1, "shortest assembled string")
    max_digits: int = option(12, "longest assembled string")
    gap_ms: tuple[float, float] = option((-60.0, 80.0), "range of most gaps between words (ms; <0: overlap)")
    pause_prob: float = option(0.15, "chance that a gap is a pause instead, up to --assembly.max-pause-ms")
    max_pause_ms: float = option(400.0, "longest pause between words (ms)")
    tempo: tuple[float, float] = option((0.85, 1.2), "range of the string's speed factor (1: as recorded)")
    stretch: tuple[float, float] = option((1.0, 1.0), "range of a pitch-keeping speed-up of the words (1 1: off)")
    edge_ms: tuple[float, float] = option((20.0, 700.0), "silence before and after the string (ms)")
    snr_db: tuple[float, float] = option((10.0, 45.0), "background noise level below the speech (dB)")
    room_prob: float = option(0.3, "share of strings put in a synthetic room")
    tilt: float = option(0.0, "microphone tilt strength in [0, 1): a random first-order filter per string (0: off)")
    level_db: tuple[float, float] = option((-30.0, -1.0), "peak level of the string (dBFS)")

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise ConfigError(f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}")
        for name in ("tempo", "stretch"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{name} must be a (low, high) range of positive factors, got {lo}, {hi}")
        if self.gap_ms[0] > self.gap_ms[1]:
            raise ConfigError(f"gap_ms must be a (low, high) range, got {self.gap_ms}")
        if not 0 <= self.tilt < 1:
            raise ConfigError(f"tilt must be in [0, 1), got {self.tilt}")


# How the test strings are said: one speed, words touching (no pauses), a quiet room. Fixed so results compare.
TEST_ASSEMBLY = AssemblyConfig(gap_ms=(-40.0, 40.0), pause_prob=0.0, tempo=(1.0, 1.0), edge_ms=(200.0, 200.0),
                               snr_db=(30.0, 30.0), room_prob=0.0, level_db=(-6.0, -6.0))  # fmt: skip


def _join(words: list[np.ndarray], gaps: list[int]) -> np.ndarray:
    """Words placed one after the other; gap g < 0 overlaps the next word by -g samples with linear cross-fades."""
    total = sum(len(w) for w in words) + sum(gaps)
    out = np.zeros(max(total, max(len(w) for w in words)), np.float32)
    pos = 0
    for i, w in enumerate(words):
        w = w.copy()
        if i > 0 and gaps[i - 1] < 0:
            n = min(-gaps[i - 1], len(w) // 2)
            w[:n] *= np.linspace(0, 1, n, dtype=np.float32)
        if i + 1 < len(words) and gaps[i] < 0:
            n = min(-gaps[i], len(w) // 2)
            w[len(w) - n :] *= np.linspace(1, 0, n, dtype=np.float32)
        pos = max(pos, 0)
        out[pos : pos + len(w)] += w[: len(out) - pos]
        pos += len(w) + (gaps[i] if i < len(gaps) else 0)
    return out


NOISE_SECONDS = 20
STRETCH_WINDOW_S = 0.032  # a speech analysis window: librosa's default 2048 points would smear a word's sounds


def time_stretch(x: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """`factor` x faster with the pitch and formants kept (librosa's phase vocoder), as speech gets faster; resampling
    (`tempo`) raises the voice as well."""
    import librosa  # the only user here; slow to import

    n_fft = 1 << round(math.log2(STRETCH_WINDOW_S * sr))
    y = librosa.effects.time_stretch(x, rate=factor, n_fft=n_fft, hop_length=n_fft // 4)
    return y.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _noise_bank(n: int) -> np.ndarray:
    """White, pink and brown noise, n samples each, made once: a fresh FFT per string would be most of its cost."""
    rng = np.random.default_rng(1234)
    return np.stack([coloured_noise(n, e, rng) for e in (0.0, 1.0, 2.0)])


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    bank = _noise_bank(max(n, NOISE_SECONDS * 16000))
    start = int(rng.integers(0, bank.shape[1] - n + 1))
    return bank[int(rng.integers(3)), start : start + n]


def assemble(words: list[np.ndarray], sr: int, cfg: AssemblyConfig, rng: np.random.Generator):
    """One spoken string from its words' clips (one speaker): tempo, gaps, edges, room, tilt, noise and level.

    Returns (waveform, the sample where each word ends)."""
    tempo = rng.uniform(*cfg.tempo)
    if abs(tempo - 1) > 1e-3:
        words = [resample(w, round(sr * tempo), sr, "MQ") for w in words]
    if cfg.stretch != (1.0, 1.0):  # drawn only when on, so the strings of recipes without it stay as they were
        factor = rng.uniform(*cfg.stretch)
        words = [time_stretch(w, sr, factor) for w in words]
    gaps = []
    for _ in range(len(words) - 1):
        lo, hi = (cfg.gap_ms[1], max(cfg.gap_ms[1], cfg.max_pause_ms)) if rng.uniform() < cfg.pause_prob else cfg.gap_ms
        gaps.append(int(rng.uniform(lo, hi) * sr / 1000))
    speech = _join([w * np.float32(10 ** (rng.uniform(-3, 3) / 20)) for w in words], gaps)
    starts = np.concatenate([[0], np.cumsum([len(w) for w in words[:-1]]) + np.cumsum(gaps)])
    if rng.uniform() < cfg.room_prob:
        rir = room_impulse(sr, rng.uniform(0.1, 0.7), rng.uniform(0.0, 12.0), rng)
        n = 1 << (len(speech) + len(rir) - 2).bit_length()  # a power of two: fast FFT sizes
        wet = np.fft.irfft(np.fft.rfft(speech, n) * np.fft.rfft(rir, n), n)  # np.convolve is O(n * len(rir))
        speech = wet[: len(speech) + sr // 10].astype(np.float32)
    if cfg.tilt > 0:  # another microphone, as augment.AugmentConfig.tilt
        speech = tilt(speech, rng.uniform(-cfg.tilt, cfg.tilt))
    lead, tail = (int(rng.uniform(*cfg.edge_ms) * sr / 1000) for _ in range(2))
    x = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    rms = math.sqrt(float(np.mean(speech.astype(np.float64) ** 2)) + 1e-12)
    noise = _noise(len(x), rng)
    x += noise * np.float32(rms * 10 ** (-rng.uniform(*cfg.snr_db) / 20))
    x *= np.float32(10 ** (rng.uniform(*cfg.level_db) / 20) / (np.abs(x).max() + 1e-9))
    return x, lead + starts + np.array([len(w) for w in words])


class StringMaker:
    """Assembles strings of random digits from isolated clips (text of length 1), one speaker per string."""

    def __init__(self, clips: Clips, sr: int, cfg: AssemblyConfig):
        self.clips, self.sr, self.cfg = clips, sr, cfg
        table: dict[str, dict[str, list[int]]] = {}
        for i, (t, s) in enumerate(zip(clips.text, clips.speaker)):
            if len(t) == 1:
                table.setdefault(s, {}).setdefault(t, []).append(i)
        # A speaker needs every digit to say any number.
        self.table = {s: d for s, d in table.items() if len(d) == 10}
        self.speakers = sorted(self.table)
        if not self.speakers:
            raise AudiomnistError("no speaker has isolated clips of all ten digits to assemble strings from")

    def make(
        self, rng: np.random.Generator, speaker: str | None = None, length: int | None = None, others=(), mark=""
    ):  # fmt: skip
        """(waveform, text) of one assembled string (make_timed); speaker and length random unless given."""
        x, text, _ = self.make_timed(rng, speaker, length, others, mark)
        return x, text

    def make_timed(
        self, rng: np.random.Generator, speaker: str | None = None, length: int | None = None, others=(), mark=""
    ) -> tuple[np.ndarray, str, np.ndarray]:
        """(waveform, text, the sample where each digit's word ends). `others`: non-digit clips said among the
        digits at random places, written `mark` in the text (WORD; "": nothing); `length` 0 with `others`: those
        alone."""
        speaker = speaker or self.speakers[rng.integers(len(self.speakers))]
        n = int(rng.integers(self.cfg.min_digits, self.cfg.max_digits + 1)) if length is None else length
        if n < 1 and not others:
            raise AudiomnistError("a string needs a digit or another word to say")
        digits = "".join(str(d) for d in rng.integers(0, 10, n))
        takes = self.table[speaker]
        words = [self.clips.audio[takes[d][rng.integers(len(takes[d]))]] for d in digits]
        labels = list(digits)
        for w in others:
            at = int(rng.integers(len(words) + 1))
            words.insert(at, w)
            labels.insert(at, mark)
        x, ends = assemble(words, self.sr, self.cfg, rng)
        return x, "".join(labels), ends[np.array([c.isdigit() for c in labels], bool)]


def held_out_strings(clips: Clips, sr: int, speakers: list[str], per_speaker: int, length: int, seed: int):
    """The fixed test set: `per_speaker` strings of `length` digits for each speaker, said as TEST_ASSEMBLY does."""
    maker = StringMaker(clips, sr, TEST_ASSEMBLY)
    out = []
    for k, s in enumerate(speakers):
        rng = np.random.default_rng([seed, k, length])
        out += [maker.make(rng, s, length) for _ in range(per_speaker)]
    return out
