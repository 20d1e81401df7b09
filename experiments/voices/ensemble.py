"""Ensembles of finished leave-one-speaker-out cvs, no training: each fold's held-out FSDD speaker scored on the
mean of the members' calibrated probabilities (members of one fold never heard its speaker).

    python experiments/voices/ensemble.py --fsdd ../shared/data/fsdd/recordings \\
        all600=CV_DIR espeak=CV_DIR2 ... [--combo all600+espeak ...]

Prints each member alone, each --combo, and all members together: mean +- std over the folds, the worst fold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audiomnist.infer import Classifier


def fold_probs(cv: Path, fsdd: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Held-out speaker -> (probabilities, true digits) of that fold's run on all of the speaker's clips."""
    out = {}
    for fold in json.loads((cv / "cv.json").read_text())["per_fold"]:
        (speaker,) = fold["test_speakers"]
        files = sorted(fsdd.glob(f"*_{speaker}_*.wav"))
        clf = Classifier.load(cv / f"fold-{fold['fold']}")
        preds, _ = clf.predict_files(files)
        probs = np.array([[q.probabilities[c] for c in clf.classes] for q in preds])
        out[speaker] = probs, np.array([int(p.name.split("_")[0]) for p in files])
    return out


def line(name: str, members: list[dict]) -> str:
    acc = {s: float((np.mean([m[s][0] for m in members], 0).argmax(1) == t).mean()) for s, (_, t) in members[0].items()}
    v = 100 * np.array(list(acc.values()))
    folds = " ".join(f"{s} {100 * a:.1f}" for s, a in sorted(acc.items()))
    return f"| {name} | {v.mean():.1f} +- {v.std():.1f} | {v.min():.1f} | {folds} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", nargs="+", help="NAME=CV_DIR of a finished `audiomnist cv --folds loso`")
    p.add_argument("--fsdd", type=Path, required=True, help="FSDD recordings folder")
    p.add_argument("--combo", action="append", default=[], help="NAME+NAME+... to score together (repeatable)")
    args = p.parse_args(argv)
    runs = {name: fold_probs(Path(cv), args.fsdd) for name, cv in (m.split("=", 1) for m in args.members)}
    print("| members | mean +- std | worst | per fold |\n|---|---|---|---|")
    for name, probs in runs.items():
        print(line(name, [probs]))
    for combo in [*args.combo, "+".join(runs)]:
        print(line(combo, [runs[n] for n in combo.split("+")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
