"""Two no-digit runs that held out the same FSDD speaker, alone and averaged: unseen words let through at the
threshold that keeps 97 % of that speaker's digits (experiments/no-digit/README.md, "An ensemble").

    python experiments/no-digit/ensemble.py RUN_A RUN_B --speaker nicolas --data ../shared/data \
        --words NEG/neg-heldout-words

The words folder must be held out from both runs (neg-heldout-words is held out from every fold).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from audiomnist.audio import load_audio
from audiomnist.infer import Classifier
from audiomnist.onnx_model import NONE_CLASS

DIGIT_SHARE = 0.97


def line(name: str, p: np.ndarray, n_digits: int, truth: np.ndarray, none: int) -> str:
    d, w = p[:n_digits], p[n_digits:]
    threshold = np.quantile(d[:, none], DIGIT_SHARE)  # answered when p(none) is under it
    return (f"| {name} | {(w[:, none] < threshold).mean():.3f} | {(w[:, none] < 0.9).mean():.3f} | "
            f"{(d[:, none] < 0.9).mean():.3f} | {(d[:, :10].argmax(1) == truth).mean():.3f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="no-digit run folders with the same held-out FSDD speaker")
    ap.add_argument("--speaker", required=True, help="their held-out FSDD speaker")
    ap.add_argument("--data", type=Path, required=True, help="../shared/data")
    ap.add_argument("--words", type=Path, required=True, help="non-digit words held out from every run")
    args = ap.parse_args()
    digits = sorted((args.data / "fsdd" / "recordings").glob(f"*_{args.speaker}_*.wav"))
    words = sorted(p for p in args.words.iterdir() if p.suffix in (".wav", ".flac"))
    truth = np.array([int(p.name[0]) for p in digits])
    probs = []
    for run in args.runs:
        clf = Classifier.load(run, backend="torch", threads=1)
        probs.append(clf.probabilities(clf.windows([load_audio(p, clf.sample_rate) for p in digits + words])))
    none = clf.classes.index(NONE_CLASS)
    print(f"| model | words answered at {DIGIT_SHARE:.0%} of digits | words at 0.9 | digits at 0.9 | digits right |")
    print("|---|---|---|---|---|")
    for run, p in zip(args.runs, probs):
        print(line(run.name, p, len(digits), truth, none))
    print(line("mean of their probabilities", np.mean(probs, axis=0), len(digits), truth, none))


if __name__ == "__main__":
    main()
