"""Test-time voice warps for the single-digit model: each clip heard again with its spectrum shifted (formants and
pitch times a, its timing kept: experiments/strings/warp_average.py's warp) and the calibrated probabilities
averaged over the versions, on a run that held out one FSDD speaker. A voice moved a little may fall nearer one
the model knows; a word that is not a digit may not move nearer any digit.

    python warp_average.py RUN --data ../shared/data --negatives NEG [--sets 1 "1 0.9 1.1" ...]

Prints, per warp set: the held-out speaker's digits right (the best digit, whatever p(none)) and, at the p(none)
threshold that keeps 97 % of them (chosen on the test speaker, as measure.py's at_digit_floor), the share of each
negative group answered with a digit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from mahalanobis import groups
from measure import DIGIT_FLOOR, FSDD
from tqdm import tqdm

from audiomnist.infer import Classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strings"))
from warp_average import warp  # noqa: E402

KEEP = (FSDD, "bengali + ukrainian, held-out speakers", "held-out words, held-out voices")


def probabilities(clf: Classifier, clips: list[np.ndarray], a: float) -> np.ndarray:
    out = []
    for i in range(0, len(clips), 64):
        out.append(clf.gated_probabilities([warp(c, clf.sample_rate, a) for c in clips[i : i + 64]])[1])
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a single-digit run with one held-out FSDD speaker")
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--negatives", type=Path, required=True, help="experiments/no-digit's folder of negatives")
    ap.add_argument("--sets", nargs="+", default=["1", "0.95", "0.9", "1.05", "1.1", "1 0.9 1.1", "1 0.95 1.05"])
    args = ap.parse_args()
    clf = Classifier.load(str(args.run), backend="torch", threads=1)
    none = clf.classes.index("none")
    found = {k: v for k, v in groups(args.run, args.data, args.negatives).items() if k in KEEP}
    clips = {k: [clf.load_file(p) for p in tqdm(v, desc=k, leave=False)] for k, v in found.items()}
    truth = np.array([int(p.stem.split("_")[0]) for p in found[FSDD]])
    warps = sorted({float(a) for s in args.sets for a in s.split()})
    probs = {a: {k: probabilities(clf, c, a) for k, c in clips.items()} for a in tqdm(warps, desc="warps")}
    print(f"| {args.run.name} warps | digits right | " + " | ".join(k for k in KEEP[1:]) + " (at 97 % digits) |")
    print("|---" * (len(KEEP) + 1) + "|")
    for s in args.sets:
        mean = {k: np.mean([probs[float(a)][k] for a in s.split()], axis=0) for k in clips}
        d = mean[FSDD]
        right = np.mean(np.nanargmax(np.delete(d, none, axis=1), axis=1) == truth)
        t = np.nextafter(np.quantile(np.nan_to_num(d[:, none], nan=1.0), DIGIT_FLOOR, method="higher"), np.inf)
        took = [np.mean(np.nan_to_num(mean[k][:, none], nan=1.0) < t) for k in KEEP[1:]]
        print(f"| {s} | {100 * right:.1f} | " + " | ".join(f"{100 * x:.1f}" for x in took) + " |", flush=True)


if __name__ == "__main__":
    main()
