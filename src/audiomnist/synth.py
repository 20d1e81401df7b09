"""Synthetic English spoken digits from every installed synthesiser (espeak-ng, flite, festival), in FSDD layout.

Each *voice* is one engine voice (an espeak-ng dialect + variant, a flite or festival voice) with a speaker and a
room of its own: a base speaking rate and pitch, a vocal-tract-length warp, a microphone or phone channel, a
synthetic room impulse response and background noise at a fixed SNR. Each *take* jitters rate and pitch, picks
the word form ("zero" or "oh" for 0), the silence around the word, the noise and the level. Every perturbed
voice is its own speaker: `OUT/{digit}_{speaker}_{take}.wav` plus `OUT/speakers.json` (metadata and full recipe).
With `--strings K` each voice also says K digit strings ("four one five five ...", no pauses) as
`OUT/{digits}_{speaker}_{take}.wav`; `--takes 0` leaves out the isolated digits, `--string-rate 1,1.7` says the
strings up to 1.7 x faster than the voice's own pace, `--string-repeats 1` says a run of equal digits in each as
people read phone numbers out ("four one double five ...").

    python -m audiomnist.synth OUT [--voices N] [--takes K] [--strings K] [--seed S] [--engines espeak,flite,festival]

`synthesize` and `perturb` are pure building blocks, so digit strings or other words can reuse the same voices.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import dataclasses
import functools
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr
from tqdm import tqdm

from .errors import AudiomnistError
from .paths import atomic_write, atomic_write_text

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ZERO_FORMS = ("zero", "oh")
ENGINES = ("espeak", "flite", "festival")
BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}
INSTALL = {
    "espeak": "apt-get install espeak-ng",
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
}
SPEAKERS_FILE = "speakers.json"  # the file the fsdd layout reads speaker metadata from
TAKES_FILE = "takes.csv"
DEFAULT_SAMPLE_RATE = 16000
ENGINE_TIMEOUT_S = 120.0  # one engine call; a batch of 20 festival takes needs a few seconds
FESTIVAL_TAKE_TIMEOUT_S = 5.0  # added per take of a festival batch, so long batches are not cut short
LIST_TIMEOUT_S = 60.0  # listing an engine's voices
FLITE_SKIP = frozenset({"awb_time"})  # a limited-domain voice that only says times of day
# (gender, accent) of the flite and festival voices, from their documentation; anything else stays unknown.
KNOWN_VOICES = {
    "kal": ("male", "american"), "kal16": ("male", "american"), "awb": ("male", "scottish"),
    "rms": ("male", "american"), "slt": ("female", "american"), "kal_diphone": ("male", "american"),
    "ked_diphone": ("male", "american"), "cmu_us_slt_arctic_hts": ("female", "american"),
}  # fmt: skip
# Accent names in the style of the flite/festival entries above; other espeak-ng dialects keep their own name.
ESPEAK_ACCENTS = {
    "en": "british", "en-us": "american", "en-us-nyc": "american new york", "en-gb-scotland": "scottish",
    "en-gb-x-rp": "british rp", "en-gb-x-gbclan": "british lancaster", "en-gb-x-gbcwmd": "british west midlands",
    "en-029": "caribbean",
}  # fmt: skip

# espeak-ng batches: takes are joined by SSML breaks, and the output is cut at long digital silences.
BATCH_BREAK_MS = 700
MIN_GAP_S = 0.35  # longer than any stop closure inside a digit word, shorter than the break
QUIET = 1e-4  # espeak-ng writes exact zeros in breaks; this only absorbs dither-free rounding

# Ranges of the random recipe; log-uniform for ratios so that x and 1/x are equally likely.
RATE_RANGE = (0.8, 1.25)  # speaker's speaking-rate factor (1 = engine default)
PITCH_RANGE = (0.8, 1.25)  # speaker's pitch factor (1 = engine default)
TAKE_RATE_JITTER = 0.1  # per take, +-10 % around the speaker's rate (log scale)
TAKE_PITCH_JITTER = 0.08
WARP_RANGE = (0.8, 1.2)  # vocal-tract-length factor: formant frequencies x warp
OH_PROBABILITY = (0.0, 0.5)  # per speaker: how often 0 is said "oh"
RT60_RANGE = (0.05, 0.9)  # seconds
DRY_PROBABILITY = 0.15  # some voices get no room at all
DRR_RANGE_DB = (0.0, 15.0)  # direct-to-reverberant energy ratio
SNR_RANGE_DB = (8.0, 40.0)
TAKE_SNR_JITTER_DB = 2.0
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1/f^exponent
NO_NOISE = "none"  # a recipe's noise when --no-perturb noise
SILENCE_RANGE_S = (0.03, 0.25)  # before and after the word
PEAK_RANGE_DB = (-18.0, -1.0)
TRIM_FLOOR_DB = -40.0
STRING_LENGTHS = (1, 12)  # digits in a string, uniform between the two (inclusive)
STRING_RATE = (1.0, 1.0)  # extra rate factor of the strings, log-uniform (1, 1: the voice's own pace)
REPEAT_WORDS = {2: "double", 3: "triple"}  # how a run of equal digits is read out in a phone number
REPEAT_LENGTHS = (2, 3)
TRIPLE_SHARE = 0.2  # of the runs said that way, how many are three digits long
STRING_STREAM = 10  # rng stream of the strings: the isolated digits use streams 0-9 (their digit)
NO_CHANNEL = "none"  # a recipe's channel when --no-perturb channel
CHANNELS = {
    # name: (low-cut Hz range, high-cut Hz range or None, tilt coefficient range, codec)
    "studio": ((30, 80), None, (-0.1, 0.1), None),
    "headset": ((100, 200), (6000, 7500), (-0.3, 0.3), None),
    "laptop": ((200, 400), (4500, 7000), (0.0, 0.6), None),
    "cheap-mic": ((250, 500), (3000, 4500), (-0.6, 0.3), None),
    "phone": ((250, 350), (3300, 3500), (-0.2, 0.4), "mulaw8k"),
}
CODEC_RATE = 8000
MULAW_MU = 255
# What `--no-perturb` can leave out of a voice (for ablations); each is drawn anyway, so the other draws and the
# voices stay those of the full recipe with the same seed.
PERTURBATIONS = ("warp", "room", "noise", "channel")


class SynthesisError(AudiomnistError):
    """One engine call that produced no usable audio; the message names the engine, voice and text."""


@dataclass(frozen=True)
class Voice:
    """One voice of one engine, as the engine names it; `variant` only for espeak-ng."""

    engine: str
    name: str
    variant: str = ""
    gender: str = "unknown"
    accent: str = "unknown"

    @property
    def label(self) -> str:
        return f"{self.name}+{self.variant}" if self.variant else self.name


@dataclass(frozen=True)
class Recipe:
    """Everything that makes one speaker: the engine voice and the speaker/room perturbation."""

    speaker: str
    voice: Voice
    rate: float
    pitch: float
    oh_probability: float
    warp: float
    channel: str
    low_hz: float
    high_hz: float | None
    tilt: float
    codec: str | None
    rt60: float
    drr_db: float
    room_seed: int
    noise: str
    snr_db: float


# ---------------------------------------------------------------------------------------------- engines


PR_SET_PDEATHSIG = 1
_engines_die_with_us = False  # set in pool workers, which have no threads, so preexec_fn is safe there


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; a no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _run(cmd: list[str], timeout: float = ENGINE_TIMEOUT_S, stdin: str | None = None) -> str:
    """Run an engine; its failure (exit status, timeout, missing binary) becomes a SynthesisError."""
    preexec = _die_with_parent if _engines_die_with_us else None
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SynthesisError(f"{cmd[0]} failed: {e}") from e
    if res.returncode != 0:
        raise SynthesisError(f"{cmd[0]} exited with {res.returncode}: {res.stderr.strip()[-300:]}")
    return res.stdout


def _read_wav(path: Path, what: str) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise SynthesisError(f"{what}: no readable audio ({e})") from e
    x = x.mean(axis=1)
    if x.size == 0 or not np.any(np.abs(x) > QUIET):
        raise SynthesisError(f"{what}: engine produced silence")
    return x, sr


def _espeak_ssml(texts: list[str], rates: list[float], pitches: list[float]) -> str:
    parts = [
        f'<prosody rate="{100 * r:.0f}%" pitch="{100 * (p - 1):+.0f}%">{_xml(t)}</prosody>'
        for t, r, p in zip(texts, rates, pitches)
    ]
    return "<speak>" + f'<break time="{BATCH_BREAK_MS}ms"/>'.join(parts) + "</speak>"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def split_on_silence(x: np.ndarray, sr: int, n: int) -> list[np.ndarray]:
    """Cut `x` at digital silences longer than MIN_GAP_S; exactly `n` pieces or a SynthesisError."""
    quiet = np.abs(x) <= QUIET
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    long = (ends - starts) >= MIN_GAP_S * sr
    inner = long & (starts > 0) & (ends < len(x))
    cuts = ((starts[inner] + ends[inner]) // 2).tolist()
    if len(cuts) != n - 1:
        raise SynthesisError(f"batch split into {len(cuts) + 1} pieces, expected {n}")
    return np.split(x, cuts)


def _espeak_batch(texts, voice: Voice, rates, pitches, tmp: Path) -> list[tuple[np.ndarray, int]]:
    wav = tmp / "espeak.wav"
    _run(["espeak-ng", "-m", "-v", voice.label, "-w", str(wav), _espeak_ssml(texts, rates, pitches)])
    x, sr = _read_wav(wav, f"espeak-ng {voice.label}")
    if len(texts) == 1:  # a phrase may hold long pauses of its own
        return [(x, sr)]
    return [(piece, sr) for piece in split_on_silence(x, sr, len(texts))]


def _flite_one(text: str, voice: Voice, rate: float, pitch: float, tmp: Path) -> tuple[np.ndarray, int]:
    """flite's int_f0_target_mean is in Hz, so `pitch` scales the voice's own mean f0 (FLITE_F0)."""
    wav = tmp / "flite.wav"
    f0 = FLITE_F0.get(voice.name, FLITE_F0_FALLBACK) * pitch
    _run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.4f}",
          "--setf", f"int_f0_target_mean={f0:.1f}", "-t", text, "-o", str(wav)])  # fmt: skip
    return _read_wav(wav, f"flite {voice.name} {text!r}")


# Each voice's own mean f0 in Hz, so that pitch 1.0 leaves the voice as it is.
FLITE_F0 = {"kal": 95.0, "kal16": 95.0, "awb": 130.0, "rms": 100.0, "slt": 170.0}
FLITE_F0_FALLBACK = 110.0
# Voices whose pitch the engine does not let us set (flite rms predicts f0 itself; festival HTS has no f0 knob).
NO_PITCH_CONTROL = frozenset({("flite", "rms")})


def pitch_controlled(voice: Voice) -> bool:
    """Whether the engine follows a requested pitch for this voice (otherwise the warp also scales pitch)."""
    hts = voice.engine == "festival" and voice.name.endswith("_hts")
    return not hts and (voice.engine, voice.name) not in NO_PITCH_CONTROL


# Scheme run once per festival batch: the voice is loaded once, then each take sets its rate and pitch.
_FESTIVAL_PRELUDE = """
(define (synth_scale params k)
  (mapcar (lambda (p) (if (or (string-equal (car p) "target_f0_mean") (string-equal (car p) "target_f0_std"))
                          (list (car p) (* k (car (cdr p)))) p)) params))
(define (synth_take text path rate pitch)
  (if synth_hts
      (set! hts_engine_params (append synth_base_hts (list (list "-r" rate))))
      (begin (Parameter.set 'Duration_Stretch (/ 1.0 rate)) (set! int_lr_params (synth_scale synth_base_lr pitch))))
  (utt.save.wave (utt.synth (eval (list 'Utterance 'Text text))) path 'riff))
"""


def _festival_script(voice: Voice, texts, rates, pitches, paths: list[Path]) -> str:
    hts = voice.name.endswith("_hts")
    lines = [_FESTIVAL_PRELUDE, f"(voice_{voice.name})", f"(set! synth_hts {'t' if hts else 'nil'})"]
    lines.append("(set! synth_base_hts (if (boundp 'hts_engine_params) hts_engine_params nil))")
    lines.append("(set! synth_base_lr (if (boundp 'int_lr_params) int_lr_params nil))")
    for text, rate, pitch, path in zip(texts, rates, pitches, paths):
        lines.append(f'(synth_take "{_scheme(text)}" "{_scheme(str(path))}" {rate:.4f} {pitch:.4f})')
    return "\n".join(lines) + "\n"


def _scheme(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _festival_batch(texts, voice: Voice, rates, pitches, tmp: Path) -> list[tuple[np.ndarray, int] | Exception]:
    """One festival process for all takes; a take whose file is missing is reported, the others kept."""
    paths = [tmp / f"festival{i}.wav" for i in range(len(texts))]
    for p in paths:
        p.unlink(missing_ok=True)
    script = tmp / "synth.scm"
    script.write_text(_festival_script(voice, texts, rates, pitches, paths))
    _run(["festival", "-b", str(script)], timeout=ENGINE_TIMEOUT_S + FESTIVAL_TAKE_TIMEOUT_S * len(texts))
    out: list[tuple[np.ndarray, int] | Exception] = []
    for text, path in zip(texts, paths):
        try:
            out.append(_read_wav(path, f"festival {voice.name} {text!r}"))
        except SynthesisError as e:
            out.append(e)
    return out


def synthesize_many(
    texts: list[str], voice: Voice, rates: list[float], pitches: list[float], tmp: Path | None = None
) -> list[tuple[np.ndarray, int] | Exception]:
    """Synthesise several texts with one voice, as few engine calls as the engine allows.

    Returns one (mono float32 waveform, sample rate) or SynthesisError per text, in order. A batch that fails
    as a whole is retried text by text, so one bad take never loses the others.
    """
    if tmp is None:
        with tempfile.TemporaryDirectory(prefix="audiomnist-synth-") as t:
            return synthesize_many(texts, voice, rates, pitches, Path(t))
    out: list[tuple[np.ndarray, int] | Exception] | None = None
    if len(texts) > 1 and voice.engine in ("espeak", "festival"):
        batch = _espeak_batch if voice.engine == "espeak" else _festival_batch
        try:
            out = list(batch(texts, voice, rates, pitches, tmp))
        except SynthesisError:
            out = None
    if out is None:
        out = [SynthesisError("not synthesised")] * len(texts)
    for i, got in enumerate(out):
        if isinstance(got, Exception):
            try:
                out[i] = synthesize(texts[i], voice, rates[i], pitches[i], tmp)
            except SynthesisError as e:
                out[i] = e
    return out


def synthesize(
    text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0, tmp: Path | None = None
) -> tuple[np.ndarray, int]:
    """One engine call: `text` in `voice` at `rate` x and `pitch` x the engine's default -> (float32 mono, sr).

    Voices without pitch control (`pitch_controlled`) ignore `pitch`. Raises SynthesisError.
    """
    if tmp is None:
        with tempfile.TemporaryDirectory(prefix="audiomnist-synth-") as t:
            return synthesize(text, voice, rate, pitch, Path(t))
    if voice.engine == "espeak":
        return _espeak_batch([text], voice, [rate], [pitch], tmp)[0]
    if voice.engine == "flite":
        return _flite_one(text, voice, rate, pitch, tmp)
    if voice.engine == "festival":
        got = _festival_batch([text], voice, [rate], [pitch], tmp)[0]
        if isinstance(got, Exception):
            raise got
        return got
    raise ValueError(f"unknown engine {voice.engine!r}; expected one of {ENGINES}")


# ----------------------------------------------------------------------------------------- voice lists

_ESPEAK_LINE = re.compile(r"^\s*\d+\s+(\S+)\s+\S+/(\S)\s+(\S+)\s+(\S+)")
_ESPEAK_VARIANT = re.compile(r"^\s*\d+\s+variant\s+\S+/(\S)\s+\S+\s+!v/(.+?)\s*(?:\(.*\))?\s*$")


def _espeak_dialects(listing: str) -> list[tuple[str, str]]:
    """(voice name for -v, accent) of each English espeak-ng voice that needs no MBROLA data."""
    found = {}
    for line in listing.splitlines()[1:]:
        m = _ESPEAK_LINE.match(line)
        if not m or m.group(1) == "variant" or m.group(4).startswith("mb/"):
            continue
        # The file name selects exactly this voice ("en-gb" would pick another voice that ignores variants).
        name = m.group(4).rsplit("/", 1)[-1].lower()
        described = m.group(3).partition("(")[2].rstrip(")").replace("_", " ").replace(",", "").lower()
        found.setdefault(name, ESPEAK_ACCENTS.get(name, described or name))
    return sorted(found.items())


def _espeak_variants(listing: str) -> list[tuple[str, str]]:
    gender = {"M": "male", "F": "female"}
    out = []
    for line in listing.splitlines()[1:]:
        m = _ESPEAK_VARIANT.match(line)
        if m:
            out.append((m.group(2), gender.get(m.group(1), "unknown")))
    return sorted(set(out))


def list_voices(engine: str) -> list[Voice]:
    """Every English voice `engine` offers on this machine (espeak-ng: every dialect x every variant)."""
    if engine == "espeak":
        dialects = _espeak_dialects(_run(["espeak-ng", "--voices=en"], timeout=LIST_TIMEOUT_S))
        variants = _espeak_variants(_run(["espeak-ng", "--voices=variant"], timeout=LIST_TIMEOUT_S))
        return [Voice("espeak", d, v, g, a) for d, a in dialects for v, g in variants]
    if engine == "flite":
        listing = _run(["flite", "-lv"], timeout=LIST_TIMEOUT_S)
        names = listing.split(":", 1)[-1].split()
        return [Voice("flite", n, "", *KNOWN_VOICES.get(n, ("unknown", "unknown"))) for n in names
                if n not in FLITE_SKIP]  # fmt: skip
    if engine == "festival":
        listing = _run(["festival", "-b", "(print (voice.list))"], timeout=LIST_TIMEOUT_S)
        names = re.findall(r"[A-Za-z0-9_]+", listing.strip().splitlines()[-1] if listing.strip() else "")
        return [Voice("festival", n, "", *KNOWN_VOICES.get(n, ("unknown", "unknown"))) for n in sorted(names)]
    raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")


def available_engines(requested: list[str]) -> list[str]:
    """The requested engines that are installed; warns about missing ones, errors when none is left."""
    unknown = [e for e in requested if e not in ENGINES]
    if unknown:
        raise AudiomnistError(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    missing = [e for e in requested if shutil.which(BINARIES[e]) is None]
    hints = "; ".join(f"{BINARIES[e]} is not installed ({INSTALL[e]})" for e in missing)
    present = [e for e in requested if e not in missing]
    if not present:
        raise AudiomnistError(f"no speech synthesiser found: {hints}")
    if missing:
        warnings.warn(f"{hints}; continuing with {', '.join(present)}", stacklevel=2)
    return present


# ----------------------------------------------------------------------------------------- perturbation


def resample_shift(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `x` `factor` times faster: every frequency (pitch and formants) x factor, duration / factor."""
    if abs(factor - 1.0) < 1e-6:
        return x
    return soxr.resample(x, factor, 1.0).astype(np.float32)


def room_impulse(sr: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A direct path plus exponentially decaying noise (-60 dB at rt60) with the given direct/reverb ratio."""
    if rt60 <= 0:
        return np.ones(1, dtype=np.float32)
    n = max(2, int(min(rt60, 1.0) * sr))
    return room_tail(rng.standard_normal(n), sr, rt60, drr_db).astype(np.float32)


def room_tail(noise: np.ndarray, sr: int, rt60, drr_db) -> np.ndarray:
    """Shape white noise (..., taps) into room impulses: decay to -60 dB at rt60 seconds, the tail scaled to drr_db
    below the direct path, which is tap 0 (1.0). rt60 and drr_db are scalars or broadcast as (..., 1): the one
    definition of a synthetic room, for synth's voices (one at a time) and augment's batches alike."""
    t = np.arange(noise.shape[-1]) / sr
    tail = noise * np.exp(-3 * math.log(10) * t / rt60)
    tail[..., 0] = 0.0
    tail *= np.sqrt(10 ** (-np.asarray(drr_db) / 10) / np.maximum(np.sum(tail**2, axis=-1, keepdims=True), 1e-12))
    tail[..., 0] = 1.0
    return tail


def tilt(x: np.ndarray, a: float) -> np.ndarray:
    """First-order spectral tilt y[t] = x[t] - a x[t-1] (x[-1] = 0): a > 0 brightens (a cheap capsule), a < 0
    darkens (a muffled one), by 20 log10((1 + |a|) / (1 - |a|)) dB from DC to Nyquist. In x's dtype."""
    return x - np.asarray(a, x.dtype) * np.concatenate([np.zeros(1, x.dtype), x[:-1]])


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n=n)
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _band_filter(sr: int, low_hz: float, high_hz: float | None) -> np.ndarray:
    """Butterworth band-pass (high-pass when the top edge is at or above Nyquist); cached per speaker."""
    if high_hz is not None and high_hz < 0.95 * sr / 2:
        return scipy.signal.butter(4, [low_hz, high_hz], "bandpass", fs=sr, output="sos")
    return scipy.signal.butter(4, low_hz, "highpass", fs=sr, output="sos")


def apply_channel(x: np.ndarray, sr: int, recipe: Recipe) -> np.ndarray:
    """Microphone or phone: band-pass, first-order spectral tilt, optional 8 kHz mu-law codec."""
    y = scipy.signal.sosfilt(_band_filter(sr, recipe.low_hz, recipe.high_hz), x)
    y = tilt(y, recipe.tilt)
    if recipe.codec == "mulaw8k":
        low = soxr.resample(y, sr, CODEC_RATE) if sr != CODEC_RATE else y
        peak = max(np.abs(low).max(), 1e-9)
        mu = np.sign(low) * np.log1p(MULAW_MU * np.abs(low / peak)) / np.log1p(MULAW_MU)
        mu = np.round(mu * 127) / 127
        low = np.sign(mu) * np.expm1(np.abs(mu) * np.log1p(MULAW_MU)) / MULAW_MU * peak
        y = soxr.resample(low, CODEC_RATE, sr)[: len(y)] if sr != CODEC_RATE else low
    return y.astype(np.float32)


def perturb(wave: np.ndarray, sr: int, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """Turn a clean engine take (already at `sr`) into this speaker's recording in this speaker's room.

    Vocal-tract warp, silence around the word, room reverberation, background noise at the speaker's SNR
    (against the dry word), the channel, then a random peak level. The warp resamples, so it scales pitch and
    tempo with the formants; `engine_request` asks the engine for pitch / warp and rate / warp so that the take
    ends at its own pitch and rate. The room is fixed by the recipe; `rng` draws what varies per take (silence,
    noise, SNR jitter, level).
    """
    x = resample_shift(wave.astype(np.float32), recipe.warp)
    speech_power = float(np.mean(x.astype(np.float64) ** 2)) + 1e-12
    lead, tail = (int(rng.uniform(*SILENCE_RANGE_S) * sr) for _ in range(2))
    x = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(tail, np.float32)])
    rir = room_impulse(sr, recipe.rt60, recipe.drr_db, np.random.default_rng(recipe.room_seed))
    x = scipy.signal.fftconvolve(x, rir)[: len(x)] if len(rir) > 1 else x
    snr = recipe.snr_db + rng.uniform(-TAKE_SNR_JITTER_DB, TAKE_SNR_JITTER_DB)
    if recipe.noise != NO_NOISE:
        noise = coloured_noise(len(x), NOISE_COLOURS[recipe.noise], rng)
        x = x + noise * math.sqrt(speech_power / 10 ** (snr / 10))
    x = apply_channel(x, sr, recipe) if recipe.channel != NO_CHANNEL else x.astype(np.float32)
    peak = 10 ** (rng.uniform(*PEAK_RANGE_DB) / 20)
    return (x * (peak / max(float(np.abs(x).max()), 1e-9))).astype(np.float32)


def trim(x: np.ndarray, sr: int, floor_db: float = TRIM_FLOOR_DB, frame_ms: int = 10) -> np.ndarray:
    """Cut leading/trailing frames quieter than `floor_db` below the loudest frame, with 5 ms fades."""
    n = max(1, sr * frame_ms // 1000)
    frames = np.pad(x, (0, -len(x) % n)).reshape(-1, n)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    active = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    y = x[active[0] * n : (active[-1] + 1) * n].astype(np.float32)
    fade = min(len(y) // 2, sr // 200)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    y[:fade] *= ramp
    y[len(y) - fade :] *= ramp[::-1]
    return y


# ------------------------------------------------------------------------------------------------ plan


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))


def _slug(text: str) -> str:
    """Speaker-id safe: FSDD names split on '_', so only letters, digits and '-'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def make_recipe(index: int, voice: Voice, rng: np.random.Generator, off: frozenset[str] = frozenset()) -> Recipe:
    """Draw one speaker: engine rate/pitch, vocal tract, channel, room and noise; the PERTURBATIONS in `off` are
    drawn, then left out (warp 1, a dry room, no noise, no channel)."""
    channel = str(rng.choice(sorted(CHANNELS)))
    low_range, high_range, tilt_range, codec = CHANNELS[channel]
    dry = rng.uniform() < DRY_PROBABILITY
    recipe = Recipe(
        speaker=f"s{index:05d}-{voice.engine}-{_slug(voice.label)}",
        voice=voice,
        rate=round(_log_uniform(rng, *RATE_RANGE), 4),
        pitch=round(_log_uniform(rng, *PITCH_RANGE), 4),
        oh_probability=round(float(rng.uniform(*OH_PROBABILITY)), 3),
        warp=round(_log_uniform(rng, *WARP_RANGE), 4),
        channel=channel,
        low_hz=round(float(rng.uniform(*low_range)), 1),
        high_hz=round(float(rng.uniform(*high_range)), 1) if high_range else None,
        tilt=round(float(rng.uniform(*tilt_range)), 3),
        codec=codec,
        rt60=0.0 if dry else round(float(rng.uniform(*RT60_RANGE)), 3),
        drr_db=round(float(rng.uniform(*DRR_RANGE_DB)), 2),
        room_seed=int(rng.integers(2**31)),
        noise=str(rng.choice(sorted(NOISE_COLOURS))),
        snr_db=round(float(rng.uniform(*SNR_RANGE_DB)), 2),
    )
    return _left_out(recipe, off)


def check_perturbations(off: frozenset[str]) -> None:
    unknown = sorted(set(off) - set(PERTURBATIONS))
    if unknown:
        raise AudiomnistError(f"--no-perturb: unknown {', '.join(unknown)}; choose from {', '.join(PERTURBATIONS)}")


def _left_out(recipe: Recipe, off: frozenset[str]) -> Recipe:
    check_perturbations(off)
    changes: dict = {}
    if "warp" in off:
        changes["warp"] = 1.0
    if "room" in off:
        changes["rt60"] = 0.0
    if "noise" in off:
        changes["noise"] = NO_NOISE
    if "channel" in off:
        changes.update(channel=NO_CHANNEL, low_hz=0.0, high_hz=None, tilt=0.0, codec=None)
    return dataclasses.replace(recipe, **changes)


def _voice_order(voices: list[Voice], rng: np.random.Generator) -> list[Voice]:
    """The voices in a seeded random order with the genders taking turns (fewer female espeak-ng variants
    than male ones would otherwise make most speakers male); the rarer gender's voices recur more often."""
    groups = {}
    for v in (voices[i] for i in rng.permutation(len(voices))):
        groups.setdefault(v.gender, []).append(v)
    lists = [groups[g] for g in sorted(groups)]
    longest = max(len(g) for g in lists)
    return [g[k % len(g)] for k in range(longest) for g in lists]


def plan(voices: dict[str, list[Voice]], n: int, seed: int, off: frozenset[str] = frozenset()) -> list[Recipe]:
    """`n` speakers: engines take turns, so each gets an equal share; each engine cycles through its voices
    in a seeded random order, so small `n` still spans many voices and large `n` reuses each evenly. `off`: the
    PERTURBATIONS left out of every voice."""
    engines = [e for e in ENGINES if voices.get(e)]
    orders = {e: _voice_order(voices[e], np.random.default_rng([seed, i, 7])) for i, e in enumerate(engines)}
    recipes = []
    for i in range(n):
        engine = engines[i % len(engines)]
        order = orders[engine]
        recipes.append(make_recipe(i, order[(i // len(engines)) % len(order)], np.random.default_rng([seed, i]), off))
    return recipes


def english_voices(engines: list[str] | None = None) -> dict[str, list[Voice]]:
    """The English voices of each installed engine of `engines` (default: all of ENGINES), as `plan` takes them."""
    found = {e: list_voices(e) for e in available_engines(list(engines or ENGINES))}
    if not any(found.values()):
        raise AudiomnistError(f"the installed engines ({', '.join(found)}) list no English voice")
    return found


def speaker_entry(recipe: Recipe) -> dict:
    """speakers.json entry: the fields the fsdd layout reads, plus the whole recipe."""
    data = dataclasses.asdict(recipe)
    voice = data.pop("voice")
    return {
        "gender": recipe.voice.gender,
        "accent": recipe.voice.accent,
        "language": "english",
        "synthetic": True,
        "pitch_controlled": pitch_controlled(recipe.voice),
        "recipe": {"engine": voice["engine"], "voice": voice["name"], "variant": voice["variant"], **data},
    }


# ---------------------------------------------------------------------------------------------- render


@dataclass(frozen=True)
class Task:
    recipe: Recipe
    index: int
    takes: int
    seed: int
    out: Path
    sample_rate: int
    scratch: Path | None = None  # parent of the engines' temp folders; the run removes it whatever happens
    strings: int = 0  # digit strings said whole, after the isolated digits
    string_lengths: tuple[int, int] = STRING_LENGTHS
    string_rate: tuple[float, float] = STRING_RATE
    string_repeats: float = 0.0  # share of strings with a run said "double X" / "triple X"

    @property
    def clips(self) -> int:
        return self.takes * len(DIGIT_WORDS) + self.strings


@dataclass(frozen=True)
class Clip:
    """One file to write: what is said, how fast and how high, and the rng that goes on into `perturb`."""

    digits: str  # the label: one digit, or a digit string
    take: int
    text: str  # the words said
    rate: float
    pitch: float
    rng: np.random.Generator = dataclasses.field(compare=False)

    def name(self, speaker: str) -> str:
        return f"{self.digits}_{speaker}_{self.take}.wav"


def _jitter(recipe: Recipe, rng: np.random.Generator) -> tuple[float, float]:
    """One take's rate and pitch: the speaker's own, jittered."""
    rate = recipe.rate * math.exp(rng.uniform(-TAKE_RATE_JITTER, TAKE_RATE_JITTER))
    pitch = recipe.pitch * math.exp(rng.uniform(-TAKE_PITCH_JITTER, TAKE_PITCH_JITTER))
    return round(rate, 4), round(pitch, 4)


def _take_params(recipe: Recipe, digit: int, rng: np.random.Generator) -> tuple[str, float, float]:
    """Word form, rate and pitch (factors of the engine's defaults) of one take, drawn first from its rng."""
    oh = rng.uniform() < recipe.oh_probability
    word = ZERO_FORMS[1] if digit == 0 and oh else DIGIT_WORDS[digit]
    return (word, *_jitter(recipe, rng))


def string_params(
    recipe: Recipe, rng: np.random.Generator, lengths: tuple[int, int] = STRING_LENGTHS
) -> tuple[str, str, float, float]:
    """(digits, words said, rate, pitch) of one digit string: length uniform in `lengths`, random digits, each 0
    "oh" with the speaker's oh_probability, words joined by spaces only (no commas, so no pauses)."""
    n = int(rng.integers(lengths[0], lengths[1] + 1))
    digits = rng.integers(0, len(DIGIT_WORDS), n)
    oh = rng.uniform(size=n) < recipe.oh_probability
    words = [ZERO_FORMS[1] if d == 0 and o else DIGIT_WORDS[d] for d, o in zip(digits, oh)]
    return ("".join(map(str, digits)), " ".join(words), *_jitter(recipe, rng))


def said_with_repeats(digits: str, words: str, rng: np.random.Generator) -> tuple[str, str]:
    """(digits, words) of a string with one run of two or three equal digits said the way people read them out
    ("double five", "triple oh"): a random place, the digits after it set to its own, its word kept (so "oh" stays
    "oh"). A string shorter than the run is returned as it is."""
    said = words.split()
    run = REPEAT_LENGTHS[int(rng.uniform() < TRIPLE_SHARE)]
    if len(digits) < run:
        return digits, words
    i = int(rng.integers(0, len(digits) - run + 1))
    digits = digits[:i] + digits[i] * run + digits[i + run :]
    said[i : i + run] = [REPEAT_WORDS[run], said[i]]
    return digits, " ".join(said)


def _clips(task: Task) -> tuple[list[Clip], list[Clip]]:
    """The isolated digits and the strings of one speaker. Strings are numbered after the isolated takes,
    so a one-digit string never takes an isolated clip's file name."""
    digits = []
    for d in range(len(DIGIT_WORDS)):
        for t in range(task.takes):
            rng = np.random.default_rng([task.seed, task.index, d, t])
            digits.append(Clip(str(d), t, *_take_params(task.recipe, d, rng), rng=rng))
    strings = []
    for k in range(task.strings):
        rng = np.random.default_rng([task.seed, task.index, STRING_STREAM, k])
        label, text, rate, pitch = string_params(task.recipe, rng, task.string_lengths)
        if task.string_rate != STRING_RATE:  # drawn only when asked, so default corpora keep their files
            rate = round(rate * _log_uniform(rng, *task.string_rate), 4)
        if task.string_repeats and rng.uniform() < task.string_repeats:  # likewise drawn only when asked
            label, text = said_with_repeats(label, text, rng)
        strings.append(Clip(label, task.takes + k, text, rate, pitch, rng=rng))
    return digits, strings


def engine_request(recipe: Recipe, rate: float, pitch: float) -> tuple[float, float]:
    """Engine rate and pitch that end at `rate` and `pitch` after `perturb`'s warp (a resampling by `warp`).

    Pitch-preserving vocal-tract warp: the engine makes the source pitch and tempo 1/warp x, the resampling
    brings them back while moving the formants by warp. Where the engine has no pitch control
    (`pitch_controlled`), the pitch ends at warp x its default.
    """
    return rate / recipe.warp, pitch / recipe.warp


def write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    """16-bit PCM, written to a temp name and renamed, so an interrupted run never leaves half a file."""
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    with atomic_write(path, "wb") as f:
        sf.write(f, pcm, sr, format="WAV", subtype="PCM_16")


def finish_take(x: np.ndarray, sr: int, sample_rate: int, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """A clean engine take at the engine's rate `sr` -> this speaker's recording at `sample_rate`: trimmed,
    resampled, then `perturb`ed with `rng`."""
    x = trim(x, sr)
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return perturb(x, sample_rate, recipe, rng)


def render_voice(task: Task) -> tuple[str, list[dict], list[str]]:
    """All takes of one speaker: one batched engine call for the digits, one for the strings, then perturb and
    write each take.

    Returns (speaker, one row per written file, one message per failed take); never raises for a bad take.
    """
    recipe = task.recipe
    groups = _clips(task)
    waves: list[tuple[np.ndarray, int] | Exception] = []
    with tempfile.TemporaryDirectory(prefix="voice-", dir=task.scratch) as tmp:
        for clips in groups:
            requests = [engine_request(recipe, c.rate, c.pitch) for c in clips]
            if clips:
                waves += synthesize_many([c.text for c in clips], recipe.voice, [r[0] for r in requests],
                                         [r[1] for r in requests], Path(tmp))  # fmt: skip
    rows, errors = [], []
    for clip, got in zip([c for clips in groups for c in clips], waves):
        name = clip.name(recipe.speaker)
        try:
            if isinstance(got, Exception):
                raise got
            y = finish_take(*got, task.sample_rate, recipe, clip.rng)
            write_wav(task.out / name, y, task.sample_rate)
        except (SynthesisError, OSError, ValueError) as e:
            errors.append(f"{name} ({recipe.voice.engine} {recipe.voice.label} {clip.text!r}): {e}")
            continue
        rows.append({"file": name, "speaker": recipe.speaker, "digit": clip.digits, "take": clip.take,
                     "word": clip.text, "rate": clip.rate, "pitch": clip.pitch,
                     "seconds": round(len(y) / task.sample_rate, 3)})  # fmt: skip
    return recipe.speaker, rows, errors


def _safe_render(task: Task) -> tuple[str, list[dict], list[str]]:
    """A bug or crash while rendering one speaker is reported as that speaker's failure, not the run's."""
    try:
        return render_voice(task)
    except Exception as e:  # noqa: BLE001 - one speaker must never take the other thousands down
        return task.recipe.speaker, [], [f"{task.recipe.speaker}: {type(e).__name__}: {e}"]


def _init_worker(parent: int) -> None:
    """Die with the parent (even on SIGKILL), and so do the engines this worker starts; Ctrl-C is the parent's."""
    global _engines_die_with_us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    _engines_die_with_us = True
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _results(tasks: list[Task], jobs: int):
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(_safe_render, tasks)
        return
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(min(jobs, len(tasks)), initializer=_init_worker, initargs=(os.getpid(),))
    try:
        yield from pool.imap_unordered(_safe_render, tasks, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# --------------------------------------------------------------------------------------------- generate


@dataclass
class Summary:
    speakers: int
    files: int
    failed: list[str]
    voices_found: dict[str, int]


def _prepare_out(out: Path, force: bool) -> None:
    """Refuse to mix runs: an earlier run's clips would be read as speakers missing from speakers.json."""
    if out.exists() and not out.is_dir():
        raise AudiomnistError(f"{out} is a file; give a folder for the corpus")
    old = sorted(out.glob("*_*_*.wav")) if out.is_dir() else []
    if old and not force:
        raise AudiomnistError(f"{out} already holds {len(old)} clips; choose an empty folder or pass --force")
    for path in old:
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(
    out: Path, voices: int, takes: int = 1, seed: int = 0, engines: list[str] | None = None, jobs: int = 1,
    sample_rate: int = DEFAULT_SAMPLE_RATE, progress: bool = True, force: bool = False, strings: int = 0,
    string_lengths: tuple[int, int] = STRING_LENGTHS, no_perturb: frozenset[str] = frozenset(),
    string_rate: tuple[float, float] = STRING_RATE, string_repeats: float = 0.0,
) -> Summary:  # fmt: skip
    """Write `voices` speakers x (10 digits x `takes` + `strings` digit strings) clips to `out`; speakers.json
    and takes.csv beside them. `no_perturb`: the PERTURBATIONS left out (for ablations)."""
    _check_counts(voices, takes, strings, string_lengths)
    if not (0 < string_rate[0] <= string_rate[1] and math.isfinite(string_rate[1])):
        raise AudiomnistError(f"--string-rate must be LOW,HIGH with 0 < LOW <= HIGH, got {string_rate}")
    if not 0 <= string_repeats <= 1:
        raise AudiomnistError(f"--string-repeats must be a share from 0 to 1, got {string_repeats}")
    check_perturbations(no_perturb)
    found = english_voices(engines)
    recipes = plan(found, voices, seed, no_perturb)
    out = Path(out)
    _prepare_out(out, force)
    scratch = Path(tempfile.mkdtemp(prefix="audiomnist-synth-"))  # workers killed mid-call leave files here
    tasks = [Task(r, i, takes, seed, out, sample_rate, scratch, strings, tuple(string_lengths), tuple(string_rate),
                  string_repeats) for i, r in enumerate(recipes)]  # fmt: skip
    rows: list[dict] = []
    failed: list[str] = []
    bar = tqdm(total=sum(t.clips for t in tasks), desc="synth", unit="clip",
               disable=not (progress and sys.stderr.isatty()))  # fmt: skip
    try:
        with bar, contextlib.closing(_results(tasks, jobs)) as results:  # closing ends the pool first
            for _, got, errors in results:
                rows += got
                failed += errors
                bar.update(len(got) + len(errors))
                for message in errors:
                    tqdm.write(f"failed: {message}", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    written = {r["speaker"] for r in rows}
    meta = {r.speaker: speaker_entry(r) for r in recipes if r.speaker in written}
    atomic_write_text(out / SPEAKERS_FILE, json.dumps(meta, indent=2) + "\n")
    _write_takes(out / TAKES_FILE, sorted(rows, key=lambda r: r["file"]))
    return Summary(len(meta), len(rows), failed, {e: len(v) for e, v in found.items()})


def _check_counts(voices: int, takes: int, strings: int, lengths: tuple[int, int]) -> None:
    if voices < 1 or takes < 0 or strings < 0 or takes + strings < 1:
        raise AudiomnistError(
            f"--voices must be at least 1 and --takes or --strings at least 1 (got {voices}, {takes}, {strings})"
        )
    if not 1 <= lengths[0] <= lengths[1]:
        raise AudiomnistError(f"--string-lengths must be MIN,MAX with 1 <= MIN <= MAX, got {lengths}")


def _write_takes(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["file", "speaker", "digit", "take", "word", "rate", "pitch", "seconds"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (FSDD layout: {digit}_{speaker}_{take}.wav; strings "
                   "{digits}_{speaker}_{take}.wav)")  # fmt: skip
    p.add_argument("--voices", type=int, default=100, help="number of perturbed voices (= speakers) (default 100)")
    p.add_argument("--takes", type=int, default=2,
                   help="takes per digit and voice; 0 with --strings for strings only (default 2)")  # fmt: skip
    p.add_argument("--strings", type=int, default=0,
                   help="digit strings per voice, said whole at the voice's pace, no pauses (default 0)")  # fmt: skip
    lo, hi = STRING_LENGTHS
    p.add_argument("--string-lengths", type=_lengths, default=STRING_LENGTHS, metavar="MIN,MAX",
                   help=f"digits in a string, uniform from MIN to MAX (default {lo},{hi})")  # fmt: skip
    p.add_argument("--string-rate", type=_rates, default=STRING_RATE, metavar="LOW,HIGH",
                   help="the strings' extra speaking-rate factor, log-uniform from LOW to HIGH on the voice's own "
                   "(e.g. 1,1.7 for numbers read quickly; the engines shorten words and keep the pitch) "
                   "(default 1,1)")  # fmt: skip
    p.add_argument("--string-repeats", type=float, default=0.0, metavar="SHARE",
                   help="share of the strings with one run of two or three equal digits said \"double five\" / "
                   "\"triple oh\", as phone numbers are read out; the label is the digits (default 0)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default 0)")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help=f"comma-separated engines to use, of {','.join(ENGINES)} (default: all installed)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: CPU count)")  # fmt: skip
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE,
                   help=f"output sample rate in Hz, mono 16-bit WAV (default {DEFAULT_SAMPLE_RATE})")  # fmt: skip
    p.add_argument("--force", action="store_true", default=False,
                   help="replace an earlier run's clips in OUT (default: refuse a folder with clips)")  # fmt: skip
    p.add_argument("--no-perturb", type=parse_perturbations, default=frozenset(), metavar="LIST",
                   help=f"comma-separated perturbations to leave out of every voice, of {','.join(PERTURBATIONS)} "
                   "(ablations: the voices and other draws stay those of the same --seed) (default: none)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", default=False, help="no progress bar")


def parse_perturbations(text: str) -> frozenset[str]:
    off = frozenset(t.strip() for t in text.split(",") if t.strip())
    try:
        check_perturbations(off)
    except AudiomnistError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return off


def _pair(cast, example: str):
    """An argparse type: 'A,B' (or one number for A = B) -> (A, B), each through `cast`."""

    def parse(text: str) -> tuple:
        try:
            parts = [cast(p) for p in text.split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2):
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        return parts[0], parts[-1]

    return parse


_lengths = _pair(int, "MIN,MAX (e.g. 1,12)")
_rates = _pair(float, "LOW,HIGH (e.g. 1,1.7)")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def add_cli(p: argparse.ArgumentParser) -> None:
    """`audiomnist data synth`: the flags of add_arguments, running run()."""
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the corpus; exit status 1 when something failed (each failure is listed), 0 otherwise."""
    if args.sample_rate < CODEC_RATE:
        raise AudiomnistError(f"--sample-rate must be at least {CODEC_RATE} Hz, got {args.sample_rate}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    # SIGTERM unwinds like Ctrl-C: subprocess.run kills a running engine, the pool's finally ends the workers.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
    try:
        with warnings.catch_warnings():  # a missing engine is one line on stderr, not a warning with its source
            warnings.showwarning = _one_line_warning
            summary = generate(args.out, args.voices, args.takes, args.seed, engines, args.jobs, args.sample_rate,
                               progress=not args.no_progress, force=args.force, strings=args.strings,
                               string_lengths=args.string_lengths, no_perturb=args.no_perturb,
                               string_rate=args.string_rate, string_repeats=args.string_repeats)  # fmt: skip
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    found = ", ".join(f"{e} {n}" for e, n in summary.voices_found.items())
    print(f"{summary.files} clips from {summary.speakers} speakers in {args.out} (engine voices found: {found})")
    if summary.failed:
        first = summary.failed[0]
        print(f"{len(summary.failed)} failure(s) (a take, or a whole speaker); the first: {first}", file=sys.stderr)
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m audiomnist.synth", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except AudiomnistError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
