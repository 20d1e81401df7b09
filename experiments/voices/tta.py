"""Test-time speed perturbation for the single-digit model: each held-out FSDD clip also played x f faster, the
probabilities averaged (experiments/voices/README.md, "Test-time augmentation").

    python experiments/voices/tta.py CV_DIR --data ../shared/data/fsdd/recordings --factors 0.9 1.0 1.1

CV_DIR is an `audiomnist cv --folds loso` folder (folds.csv names each fold's held-out speaker).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from audiomnist.audio import load_audio, resample
from audiomnist.infer import Classifier


def fold_accuracy(run: Path, files: list[Path], factors: list[float]) -> tuple[float, float]:
    clf = Classifier.load(run, backend="torch", threads=1)
    sr, digits = clf.sample_rate, [clf.classes.index(str(d)) for d in range(10)]
    truth = np.array([int(p.name[0]) for p in files])
    clips = [load_audio(p, sr) for p in files]
    probs = {}
    for f in factors:  # played f times faster: pitch and formants x f, duration / f
        played = clips if f == 1 else [resample(x, round(sr * f), sr, "HQ") for x in clips]
        probs[f] = clf.probabilities(clf.windows(played))[:, digits]
    base = float((probs[1.0].argmax(1) == truth).mean()) if 1.0 in probs else float("nan")
    mean = np.mean(list(probs.values()), axis=0)
    return base, float((mean.argmax(1) == truth).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cv", type=Path, help="a leave-one-speaker-out cv folder")
    ap.add_argument("--data", type=Path, required=True, help="the FSDD recordings folder")
    ap.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.0, 1.1], help="speed factors (1: as is)")
    args = ap.parse_args()
    rows = []
    with open(args.cv / "folds.csv") as f:
        for row in csv.DictReader(f):
            files = sorted(args.data.glob(f"*_{row['test_speakers']}_*.wav"))
            rows.append((row["test_speakers"], *fold_accuracy(args.cv / f"fold-{row['fold']}", files, args.factors)))
            print(f"| {rows[-1][0]} | {rows[-1][1]:.3f} | {rows[-1][2]:.3f} |", flush=True)
    a = np.array([r[1:] for r in rows])
    print(f"| mean | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} |")
    print(f"| worst | {a[:, 0].min():.3f} | {a[:, 1].min():.3f} |")


if __name__ == "__main__":
    main()
