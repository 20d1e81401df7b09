"""Streaming real-time factor: processing time / audio duration of `audiomnist listen --input` on a ~20 s recording.

    python benchmarks/bench_stream.py [--seconds 20] [--threads 1] [--model default] [--backend torch] [--repeats 3]

The recording is FSDD digits by one speaker with 0.4-0.8 s pauses and white noise 30 dB under the speech, written at
8 kHz (the shipped model's rate) and 44.1 kHz (a microphone's, so the streaming resampler is included). Reported:
in-process RTF of the whole path (read 100 ms blocks, resample, VAD, classify), its VAD-only part, the time per
digit, whether the digit string came out right, and the wall time of the CLI command itself (startup included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiomnist.infer import Classifier
from audiomnist.stream import Segmenter, VadConfig, join_labels, read_blocks, transcribe_file

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOMNIST_SHARED", REPO.parent / "shared"))
FSDD = SHARED / "data" / "fsdd" / "recordings"


def recording(seconds: float, seed: int = 0) -> tuple[np.ndarray, str]:
    """At least `seconds` of 8 kHz FSDD digits (speaker jackson) with pauses and noise, and the digit string."""
    if not FSDD.is_dir():
        sys.exit(f"FSDD recordings not found at {FSDD}")
    rng = np.random.default_rng(seed)
    parts, digits, total = [], "", 0
    while total < seconds * 8000:
        d, i = int(rng.integers(10)), int(rng.integers(50))
        clip = sf.read(FSDD / f"{d}_jackson_{i}.wav", dtype="float32")[0]
        pause = np.zeros(round(rng.uniform(0.4, 0.8) * 8000), np.float32)
        parts += [pause, clip]
        digits += str(d)
        total += len(pause) + len(clip)
    x = np.concatenate(parts + [np.zeros(4000, np.float32)])
    speech = np.concatenate(parts[1::2])
    x += rng.normal(0, np.sqrt(np.mean(speech**2)) * 10 ** (-30 / 20), len(x)).astype(np.float32)
    return x, digits


def vad_only(path: Path, sample_rate: int) -> float:
    t = time.perf_counter()
    sr, blocks = read_blocks(path)
    rs = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ") if sr != sample_rate else None
    seg = Segmenter(sample_rate, VadConfig(), window_samples=sample_rate)
    for b in blocks:
        seg.feed(rs.resample_chunk(b) if rs else b)
    seg.flush()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clf = Classifier.load(args.model, backend=args.backend, threads=args.threads)
    x, truth = recording(args.seconds)
    print(
        f"model {args.model or 'default'} ({args.backend}, {args.threads} thread(s)), "
        f"{len(x) / 8000:.1f} s recording of {len(truth)} digits, best of {args.repeats}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (8000, 44100):
            path = Path(tmp) / f"digits_{rate}.wav"
            sf.write(path, x if rate == 8000 else soxr.resample(x, 8000, rate), rate)
            duration = sf.info(path).duration
            list(transcribe_file(path, clf))  # warm-up
            times, heard = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                heard = list(transcribe_file(path, clf))
                times.append(time.perf_counter() - t)
            best = min(times)
            vad = min(vad_only(path, clf.sample_rate) for _ in range(args.repeats))
            got = join_labels(d.label for d in heard)
            print(
                f"{rate:>5} Hz input: RTF {best / duration:.4f} ({best * 1000:.0f} ms for {duration:.1f} s; "
                f"read+resample+VAD {vad / duration:.4f}; {1000 * (best - vad) / max(1, len(heard)):.1f} ms per "
                "digit); "
                f"{'digits right' if got == truth else f'digits WRONG: {got} vs {truth}'}"
            )
            cmd = [
                sys.executable,
                "-m",
                "audiomnist.cli",
                "listen",
                "--input",
                str(path),
                "--threads",
                str(args.threads),
            ]
            if args.model:
                cmd += ["--model", args.model]
            t = time.perf_counter()
            subprocess.run(cmd + ["--backend", args.backend], check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            print(
                f"        CLI `audiomnist listen --input FILE --threads {args.threads}`: {wall:.2f} s wall, "
                "startup included"
            )


if __name__ == "__main__":
    main()
