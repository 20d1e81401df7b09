"""A single-digit run's held-out FSDD speaker, and unseen non-digit words of held-out voices, through the phone codecs
of experiments/strings/phone_codecs.py: per codec, the held-out digits' accuracy (best digit), the share of them
answered with a digit at the model's stored p(none) threshold, and the share of the words answered with a digit.

    python experiments/no-digit/digit_codecs.py RUN [RUN ...] --data ../shared/data --words NEGDIR/neg-heldout-words
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strings"))
from phone_codecs import CODECS, through  # noqa: E402

from audiomnist.audio import load_audio  # noqa: E402
from audiomnist.infer import Classifier  # noqa: E402

SHIPPED_THRESHOLD = 0.88  # the shipped model's stored p(none) threshold, for runs that store none


def held_out_fsdd(run: Path, data: Path) -> list[Path]:
    split = json.loads((run / "metrics.json").read_text())["split"]
    test = {s.split("/")[-1] for s in split["test_speakers"]}
    return sorted(p for p in (data / "fsdd" / "recordings").glob("*.wav") if p.stem.split("_")[1] in test)


def answers(clf: Classifier, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """p(none) (1 where the audio gate refused) and the best digit of each clip."""
    preds = clf.predict_batch(waves, clf.sample_rate)
    digits = [c for c in clf.classes if c != "none"]
    p_none = np.array([q.probabilities.get("none", 0.0) if q.probabilities else 1.0 for q in preds])
    best = np.array([int(max(digits, key=q.probabilities.get)) if q.probabilities else -1 for q in preds])
    return p_none, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="single-digit runs with a none class and held-out speakers")
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd/recordings inside)")
    ap.add_argument("--words", type=Path, required=True, help="non-digit words of held-out voices")
    ap.add_argument("--codecs", nargs="+", default=list(CODECS), choices=list(CODECS), help="conditions")
    args = ap.parse_args()
    print("| run | codec | digits right | digits answered | words answered with a digit |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        clf = Classifier.load(str(run))
        sr, t = clf.sample_rate, clf.none_threshold or SHIPPED_THRESHOLD
        fsdd = held_out_fsdd(run, args.data)
        truth = np.array([int(p.stem.split("_")[0]) for p in fsdd])
        clips = [load_audio(p, sr) for p in fsdd]
        words = [load_audio(p, sr) for p in sorted(args.words.glob("*.wav"))]
        with tempfile.TemporaryDirectory() as tmp:
            for codec in args.codecs:
                p_d, best = answers(clf, [through(codec, x, sr, Path(tmp)) for x in clips])
                p_w, _ = answers(clf, [through(codec, x, sr, Path(tmp)) for x in words])
                print(f"| {run.name} | {codec} | {np.mean(best == truth):.3f} | {np.mean(p_d < t):.3f} | "
                      f"{np.mean(p_w < t):.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
