"""A blank penalty at decoding: each frame's blank probability times SCALE (renormalised) before the recogniser decodes,
on string runs that hold out one FSDD speaker. The unheard speaker's errors are mostly digits left out; a smaller
blank lets a weaker digit peak through (and inserts where the model wavers). Each run is scored alone, as the
recogniser decodes a recording (edges padded, a quick number slowed), on its fold's 200 ten-digit test strings and
on the same strings said 1.3 x faster; probabilities are computed once per waveform and scaled for every SCALE.

    python blank_scale.py RUN [RUN ...] --data FSDD [--scales 1 0.7 0.5 0.3 0.2 0.1] [--strings 200]

Prints a row per run and scale: DER / exact at the recorded pace and at 1.3 x, and the digits said per digit
(< 1: left out, > 1: put in).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fold import held_out, test_strings

from audiomnist import ctc
from audiomnist.recognizer import StringRecognizer
from audiomnist.strings import load_clips

FAST = 1.3  # a quick reader (experiments/strings/README.md "Natural pace")


def with_blank_scale(rec: StringRecognizer) -> dict:
    """Patch rec.probabilities to scale blank by box["scale"], computing each waveform's probabilities once."""
    base, cache, box = rec.probabilities, {}, {"scale": 1.0}

    def scaled(wave: np.ndarray) -> np.ndarray:
        key = hash(np.asarray(wave, np.float32).tobytes())
        if key not in cache:
            cache[key] = base(wave)
        p = cache[key].copy()
        p[:, 0] *= box["scale"]
        return p / p.sum(axis=1, keepdims=True)

    rec.probabilities = scaled
    return box


def row(rec: StringRecognizer, items: list, sr: int) -> str:
    hyps = [rec.transcribe(x, sr).digits for x, _ in items]
    refs = [d for _, d in items]
    m = ctc.string_metrics(refs, hyps)
    said = sum(map(len, hyps)) / sum(map(len, refs))
    return f"{100 * m['digit_error_rate']:.1f} / {100 * m['exact_match']:.0f} ({said:.3f})"


def fold_sets(run: Path, data: str, n: int, fast: bool = True) -> tuple[StringRecognizer, int, list, list]:
    """A string run's recogniser (alone, one thread), its rate, and its fold's `n` test strings as recorded and 1.3 x
    faster (empty when not `fast`)."""
    rec = StringRecognizer.load(str(run), backend="torch", threads=1, rescore=None)
    speaker, seed, sr = held_out(run)
    clips = load_clips([data], sr, progress=False)
    plain = test_strings(clips, sr, speaker, seed, n)
    quick = test_strings(clips, sr, speaker, seed, n, tempo=(FAST, FAST)) if fast else []
    return rec, sr, plain, quick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="string runs with one held-out FSDD speaker each")
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 0.7, 0.5, 0.3, 0.2, 0.1], help="blank scales")
    ap.add_argument("--strings", type=int, default=200, help="test strings per run")
    args = ap.parse_args()
    print("| run | blank scale | recorded pace: DER / exact (digits said a digit) | 1.3 x faster |")
    print("|---|---|---|---|")
    for run in args.runs:
        rec, sr, plain, fast = fold_sets(run, args.data, args.strings)
        box = with_blank_scale(rec)
        for s in args.scales:
            box["scale"] = s
            print(f"| {run.name} | {s:g} | {row(rec, plain, sr)} | {row(rec, fast, sr)} |", flush=True)


if __name__ == "__main__":
    main()
