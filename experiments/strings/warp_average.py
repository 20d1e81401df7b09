"""Test-time voice warps: the unheard speaker's recording heard again with its spectrum shifted (formants and pitch
moved by a factor, its timing kept) and the per-frame probabilities averaged over the versions before the
recogniser decodes. The two speakers the string model does worst on are the two whose voices are least like the
training ones (experiments/strings/README.md "What this says"); a voice moved a little may fall nearer one the
model knows, and the versions' errors need not agree. Each version is the recording resampled by 1/a and played at
the model's rate (every frequency times a, duration over a), then WSOLA (tempo.change_tempo) brings it back to
its length, so the frames line up with the original's.

    python warp_average.py RUN [RUN ...] --data FSDD [--sets 1 "1 0.9 1.1" ...] [--strings 200]

Prints a row per run and warp set: DER / exact at the recorded pace and at 1.3 x, digits said per digit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from blank_scale import fold_sets, row

from audiomnist.audio import resample
from audiomnist.recognizer import StringRecognizer
from audiomnist.tempo import change_tempo


def warp(wave: np.ndarray, sr: int, a: float) -> np.ndarray:
    """`wave` with every frequency times `a` and its length kept."""
    if a == 1:
        return wave
    moved = resample(wave, sr, int(round(sr / a)), "HQ")  # played at sr: frequencies x a, duration / a
    return change_tempo(moved, sr, 1 / a)[: len(wave)]


def with_warps(rec: StringRecognizer, sr: int) -> dict:
    """Patch rec.probabilities to average over box["warps"] (arithmetic or geometric: box["mean"])."""
    base, box = rec.probabilities, {"warps": [1.0], "mean": "arith"}

    def averaged(wave: np.ndarray) -> np.ndarray:
        ps = [base(warp(np.asarray(wave, np.float32), sr, a)) for a in box["warps"]]
        n = min(len(p) for p in ps)
        ps = np.stack([p[:n] for p in ps])
        if box["mean"] == "geo":
            q = np.exp(np.log(np.maximum(ps, 1e-12)).mean(axis=0))
            return q / q.sum(axis=1, keepdims=True)
        return ps.mean(axis=0)

    rec.probabilities = averaged
    return box


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="string runs with one held-out FSDD speaker each")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--sets", nargs="+", default=["1", "0.9", "1.1", "1 0.9 1.1", "1 0.92 0.85"], help="warp sets")
    ap.add_argument("--mean", choices=["arith", "geo"], default="arith", help="how the versions are averaged")
    ap.add_argument("--strings", type=int, default=200, help="test strings per run")
    ap.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True, help="also at 1.3 x")
    args = ap.parse_args()
    print("| run | warps | recorded pace: DER / exact (digits said a digit) | 1.3 x faster |")
    print("|---|---|---|---|")
    for run in args.runs:
        rec, sr, plain, fast = fold_sets(run, args.data, args.strings, args.fast)
        box = with_warps(rec, rec.sample_rate)
        box["mean"] = args.mean
        for s in args.sets:
            box["warps"] = [float(a) for a in s.split()]
            quick = row(rec, fast, sr) if fast else "-"
            print(f"| {run.name} | {s} | {row(rec, plain, sr)} | {quick} |", flush=True)


if __name__ == "__main__":
    main()
