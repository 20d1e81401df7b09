"""The string model's count as a second test, with the encoder models (experiments/no-digit/README.md, "The string
model's count, again"): a clip is a digit if p(none) < t, or if p(none) < t and the digit-string model also finds
exactly one digit in it. Each rule's share of each group answered with a digit, at the p(none) threshold that keeps
97 % of the held-out FSDD speaker's digits under that rule (a recipe comparison, chosen on the test speaker).

    python experiments/no-digit/count_curve.py DIGIT_RUN STRING_RUN --data ../shared/data \
        --group "held-out words=NEG/neg-heldout-words" [--group NAME=DIR ...] [--temperature 0.528]

Both runs must hold out the same FSDD speaker. Other-language words are the digit run's test speakers'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from measure import AUDIO, DIGIT_FLOOR, FSDD, speaker, uncalibrated

from audiomnist.evaluate import with_temperature
from audiomnist.infer import Classifier
from audiomnist.recognizer import StringRecognizer

OTHER = "bengali + ukrainian, held-out speakers"


def held_out_groups(run: Path, data: Path, extra: list[str]) -> dict[str, list[Path]]:
    split = json.loads((run / "metrics.json").read_text())["split"]
    test = {s.split("/")[-1] for s in split["test_speakers"]}

    def held(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.suffix in AUDIO and speaker(p) in test)

    out = {FSDD: held(data / "fsdd" / "recordings"), OTHER: held(data / "bengali") + held(data / "ukrainian")}
    for spec in extra:
        name, folder = spec.split("=", 1)
        out[name] = sorted(p for p in Path(folder).iterdir() if p.suffix in AUDIO)
    return out


def clip_scores(clf: Classifier, rec: StringRecognizer, paths: list[Path], temperature: float):
    """p(none) at `temperature` (1 for the gate's refusals) and the string model's digit count, per clip."""
    preds, errors = clf.predict_files(paths)
    if errors:
        raise SystemExit(f"{len(errors)} unreadable clips, first: {errors[0]}")
    raw, gated = uncalibrated(clf, preds)
    probs = np.where(gated[:, None], raw, with_temperature(raw, temperature))
    counts = np.array([len(rec.transcribe_file(q.path).digits) for q in preds])
    return probs[:, clf.classes.index("none")], counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("digit_run", type=Path, help="a single-digit run with a none class")
    ap.add_argument("string_run", type=Path, help="a digit-string run holding out the same FSDD speaker")
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd, bengali, ukrainian)")
    ap.add_argument("--group", action="append", default=[], help="NAME=DIR: more clips, all not digits")
    ap.add_argument("--temperature", type=float, default=0.528, help="softmax temperature of the digit run")
    ap.add_argument("--threshold", type=float, default=0.88, help="the shipped p(none) threshold, scored as well")
    args = ap.parse_args()
    clf = Classifier.load(str(args.digit_run), backend="torch", threads=1)
    rec = StringRecognizer.load(args.string_run, backend="torch", threads=1, rescore=None)
    scores = {
        k: clip_scores(clf, rec, v, args.temperature)
        for k, v in held_out_groups(args.digit_run, args.data, args.group).items()
    }
    fsdd_none, fsdd_count = scores[FSDD]
    print("string count == 1: " + ", ".join(f"{k.split(',')[0]} {np.mean(c == 1):.3f}" for k, (_, c) in scores.items()))
    for rule, one in (("p(none) < t", False), ("p(none) < t and one string digit", True)):
        cand = np.unique(np.concatenate([fsdd_none, [1.0 + 1e-9]]))
        kept = [np.mean((fsdd_none < t) & ((fsdd_count == 1) | (not one))) for t in cand]
        ok = [t for t, k in zip(cand, kept) if k >= DIGIT_FLOOR]
        if not ok:
            print(f"{rule}: never keeps {DIGIT_FLOOR:.0%} of the digits (at most {max(kept):.3f})")
            continue
        for name, t in (("97 % floor", float(min(ok))), ("shipped", args.threshold)):
            cells = [
                f"{k.split(',')[0]} {np.mean((p < t) & ((c == 1) | (not one))):.3f}" for k, (p, c) in scores.items()
            ]
            print(f"{rule}, {name} t = {t:.4f}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
