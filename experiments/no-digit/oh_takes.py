"""How a none-recipe fold hears the held-out synthetic voices' zeros said "oh", from measure.py's saved probabilities.

    python experiments/no-digit/oh_takes.py FOLD.npz [FOLD.npz ...] --takes SYNTH/takes.csv \
        --heldout NEGDIR/synth-digits-heldout [--temperature 0.528] [--threshold 0.88]

Per fold, at one temperature: the p(none) threshold keeping 97 % of the held-out FSDD speaker's digits and the share
of words never trained on below it; then, among the held-out voices' takes that say "oh", the share kept at
--threshold, the share whose likeliest digit is 0, and the median probability of 0 among the digits (what the
string recogniser's rescoring uses), against the takes that say "zero".
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from measure import AUDIO, DIGIT_FLOOR, at_temperature

FSDD, SYNTH, UNSEEN = 0, 1, 4  # measure.py's group order


def said(q: np.ndarray, threshold: float) -> str:
    """Kept at `threshold`, likeliest digit 0, median p(0) among the digits, of clips whose truth is 0."""
    kept = np.mean(q[:, 10] < threshold)
    top0 = np.mean(q[:, :10].argmax(1) == 0)
    p0 = np.median(q[:, 0] / q[:, :10].sum(1))
    return f"n={len(q)} kept {kept:.2f}, likeliest digit 0 {top0:.2f}, median p(0 | a digit) {p0:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folds", type=Path, nargs="+", help="measure.py's FILE.npz")
    p.add_argument("--takes", type=Path, required=True, help="takes.csv of the synthetic corpus (its word column)")
    p.add_argument("--heldout", type=Path, required=True, help="the held-out synthetic digits folder measure.py read")
    p.add_argument("--temperature", type=float, default=0.528)
    p.add_argument("--threshold", type=float, default=0.88, help="p(none) threshold for the 'kept' shares")
    args = p.parse_args()
    with open(args.takes, newline="", encoding="utf-8") as f:
        word = {r["file"]: r["word"] for r in csv.DictReader(f)}
    files = sorted(q.name for q in args.heldout.iterdir() if q.suffix in AUDIO)
    oh = np.array([word[f] == "oh" for f in files])
    zero = np.array([word[f] == "zero" for f in files])
    for npz in args.folds:
        raw = dict(np.load(npz))
        fsdd_none = at_temperature(raw, FSDD, args.temperature)[:, 10]
        floor = float(np.nextafter(np.quantile(fsdd_none, DIGIT_FLOOR, method="higher"), np.inf))
        unseen = float(np.mean(at_temperature(raw, UNSEEN, args.temperature)[:, 10] < floor))
        synth = at_temperature(raw, SYNTH, args.temperature)
        assert len(synth) == len(files), f"{npz}: {len(synth)} held-out synthetic clips, {len(files)} files"
        oh_said, zero_said = said(synth[oh], args.threshold), said(synth[zero], args.threshold)
        print(f"{npz}: 97 % floor {floor:.3f}, unseen words {unseen:.3f} | 'oh' {oh_said} | 'zero' {zero_said}")


if __name__ == "__main__":
    main()
