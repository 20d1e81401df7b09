"""The shipped model (or any model) on non-digits it never heard: words said by the held-out synthetic voices
500-599 (their digits are in the shipped model's training, their words are not) and noise clips made with other
seeds than its own.

    python experiments/no-digit/shipped.py [--model default] NEGDIR/neg-heldout-words NEGDIR/neg-heldout-seen ...

Prints, per folder, the share answered with a digit at the model's own p(none) threshold and at 0.5 and argmax.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from audiomnist.infer import Classifier

AUDIO = (".wav", ".flac")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="folders of non-digit clips")
    p.add_argument("--model", default="default", help="run folder, checkpoint, .onnx or shipped name")
    args = p.parse_args(argv)
    clf = Classifier.load(args.model)
    none = clf.classes.index("none")
    print(f"{args.model}: stored p(none) threshold {clf.none_threshold}, T {clf.temperature:.3f}")
    print(f"| folder | clips | gated | digit at p(none) < {clf.none_threshold} | at < 0.5 | at argmax |")
    print("|---|---|---|---|---|---|")
    for folder in args.folders:
        preds, _ = clf.predict_files(sorted(f for f in folder.iterdir() if f.suffix in AUDIO))
        gated = np.array([q.probabilities == {} for q in preds])
        p_none = np.array([1.0 if g else q.probabilities["none"] for q, g in zip(preds, gated)])
        top = np.array([none if g else clf.classes.index(max(q.probabilities, key=q.probabilities.get))
                        for q, g in zip(preds, gated)])  # fmt: skip
        shares = [np.mean(p_none < clf.none_threshold), np.mean(p_none < 0.5), np.mean(top != none)]
        print(f"| {folder.name} | {len(preds)} | {gated.sum()} | " + " | ".join(f"{s:.3f}" for s in shares) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
