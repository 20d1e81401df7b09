"""Synthesise the packaged sample: spoken digits from espeak-ng voices in AudioMNIST layout (16 kHz FLAC).

Each "speaker" is a fixed espeak-ng voice + variant + base pitch/speed; each take jitters pitch and speed,
trims the synthesiser's silence, adds a little random silence and background noise, and varies the peak level.
The output is deterministic for a given seed, so the shipped files can be regenerated bit for bit.

    python tools/make_sample.py [--out src/audiomnist/sample] [--seed 0] [--speakers 16] [--takes 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr
from tqdm import tqdm

from audiomnist.paths import atomic_write, atomic_write_text

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16000
RECORDING_DATE = "26-11-25-00-00-00"  # fixed so the meta file is reproducible; format of the real AudioMNIST meta
MIN_SECONDS = 0.4  # short words ("one", "eight") get extra silence up to this length
QUANT_STEP = 8  # 13-bit resolution in 16-bit PCM: FLAC stores the zero low bits for free; step << noise floor
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "audiomnist" / "sample"


@dataclass(frozen=True)
class Speaker:
    voice: str  # espeak-ng language voice, e.g. "en-us" ("en" is British; "en-gb" would ignore the variant)
    variant: str  # espeak-ng voice variant: m1..m7 (male), f1..f5 (female)
    pitch: int  # espeak-ng -p, 0..99
    speed: int  # espeak-ng -s, words per minute

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"


# Alternating genders so that any prefix (--speakers N) stays balanced.
SPEAKERS = (
    Speaker("en-us", "m1", 40, 165),
    Speaker("en", "f1", 55, 170),
    Speaker("en-gb-scotland", "m3", 50, 180),
    Speaker("en-029", "f2", 62, 160),
    Speaker("en-gb-x-rp", "m2", 35, 150),
    Speaker("en-us-nyc", "f3", 48, 185),
    Speaker("en-gb-x-gbclan", "m4", 58, 170),
    Speaker("en-gb-x-gbcwmd", "f4", 70, 175),
    Speaker("en-us", "m5", 30, 190),
    Speaker("en-gb-x-rp", "f5", 45, 155),
    Speaker("en-029", "m6", 52, 160),
    Speaker("en-gb-scotland", "f1", 38, 165),
    Speaker("en-us-nyc", "m7", 62, 175),
    Speaker("en-gb-x-gbclan", "f2", 75, 150),
    Speaker("en-gb-x-gbcwmd", "m2", 60, 195),
    Speaker("en", "f3", 66, 180),
)


def synthesise(text: str, voice: str, pitch: int, speed: int, tmp: Path) -> tuple[np.ndarray, int]:
    """Run espeak-ng once and return (mono float32 waveform, sample rate)."""
    wav = tmp / "clip.wav"
    wav.unlink(missing_ok=True)
    cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), text]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not wav.exists():
        raise RuntimeError(f"espeak-ng failed ({' '.join(cmd)}): {res.stderr.strip() or res.returncode}")
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def trim(x: np.ndarray, sr: int, floor_db: float = -40.0, frame_ms: int = 10) -> np.ndarray:
    """Cut leading/trailing frames quieter than `floor_db` below the loudest frame, with 5 ms fades."""
    n = max(1, sr * frame_ms // 1000)
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    active = np.nonzero(20 * np.log10(rms / rms.max()) > floor_db)[0]
    if len(active) == 0:
        raise RuntimeError("espeak-ng produced silence")
    y = x[active[0] * n : (active[-1] + 1) * n].copy()
    fade = min(len(y) // 2, sr // 200)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    y[:fade] *= ramp
    y[len(y) - fade :] *= ramp[::-1]
    return y


def render_take(speaker: Speaker, digit: int, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """One take: jittered synthesis -> trim -> 16 kHz -> random silence, room noise and peak level -> int16."""
    pitch = int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99))
    speed = int(round(speaker.speed * rng.uniform(0.9, 1.1)))
    x, sr = synthesise(DIGITS[digit], f"{speaker.voice}+{speaker.variant}", pitch, speed, tmp)
    x = soxr.resample(trim(x, sr), sr, SAMPLE_RATE).astype(np.float64)
    lead, tail = (int(rng.uniform(0.02, 0.12) * SAMPLE_RATE) for _ in range(2))
    short = max(0, int(MIN_SECONDS * SAMPLE_RATE) - len(x) - lead - tail)
    split = int(short * rng.uniform())
    lead, tail = lead + split, tail + short - split
    speech_rms = np.sqrt(np.mean(x**2))
    x = np.concatenate([np.zeros(lead), x, np.zeros(tail)])
    noise = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(len(x)))  # pinkish, like a quiet room
    x += noise / noise.std() * speech_rms * 10 ** (-rng.uniform(25.0, 40.0) / 20)
    x *= np.exp(rng.uniform(np.log(0.15), np.log(0.6))) / np.abs(x).max()
    return (np.round(x * 32767 / QUANT_STEP) * QUANT_STEP).astype(np.int16)


def meta_entry(speaker: Speaker) -> dict:
    """Metadata in the keys and style of the real AudioMNIST audioMNIST_meta.txt."""
    return {
        "accent": f"espeak {speaker.voice}",
        "age": None,
        "gender": speaker.gender,
        "native speaker": "yes",
        "origin": f"synthetic (espeak-ng {speaker.voice}+{speaker.variant})",
        "recordingdate": RECORDING_DATE,
        "recordingroom": "synthetic",
    }


def write_flac(path: Path, x: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        sf.write(f, x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def make_sample(out: Path, seed: int = 0, speakers: int = 16, takes: int = 4, progress: bool = True) -> int:
    """Write `speakers` x 10 digits x `takes` FLAC files plus audioMNIST_meta.txt under `out`; return failures."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("error: espeak-ng is not installed (apt-get install espeak-ng)")
    if not 1 <= speakers <= len(SPEAKERS):
        raise SystemExit(f"error: --speakers must be 1..{len(SPEAKERS)}, got {speakers}")
    if takes < 1:
        raise SystemExit(f"error: --takes must be at least 1, got {takes}")
    jobs = [(s, d, t) for s in range(speakers) for d in range(10) for t in range(takes)]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for s, d, t in tqdm(jobs, desc="sample", unit="clip", disable=not (progress and sys.stderr.isatty())):
            path = out / f"{s + 1:02d}" / f"{d}_{s + 1:02d}_{t}.flac"
            try:
                write_flac(path, render_take(SPEAKERS[s], d, np.random.default_rng([seed, s, d, t]), Path(tmp)))
            except (RuntimeError, OSError) as e:
                failed += 1
                print(f"{path}: {e}", file=sys.stderr)
    meta = {f"{s + 1:02d}": meta_entry(SPEAKERS[s]) for s in range(speakers)}
    atomic_write_text(out / "audioMNIST_meta.txt", json.dumps(meta, indent=4) + "\n")
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: the packaged sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speakers", type=int, default=len(SPEAKERS), help=f"first N speakers, 1..{len(SPEAKERS)}")
    p.add_argument("--takes", type=int, default=4, help="repetitions per digit and speaker")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    failed = make_sample(args.out, args.seed, args.speakers, args.takes, progress=not args.no_progress)
    if failed:
        print(f"{failed} clip(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
