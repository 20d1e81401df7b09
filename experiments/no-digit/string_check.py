"""A second opinion on "is this a digit": a single-digit run and a string run that hold out the same FSDD speaker,
heard together on that speaker's isolated digits and on unseen non-digit words of held-out synthetic voices. The
string model (CTC over blank + digits, trained on no words at all) answers each clip with the digits it hears; a
clip is a digit only when the single-digit model accepts it (p(none) under a threshold) and the string model hears
(a) any digit, (b) the single-digit model's digit among its own. Each rule's threshold keeps 97 % of the speaker's
digits (chosen on that speaker: a comparison of rules, not a deployable threshold).

    python experiments/no-digit/string_check.py DIGIT_RUN STRING_RUN --data ../shared/data \
        --words NEGDIR/neg-heldout-words
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from digit_codecs import answers, held_out_fsdd

from audiomnist.audio import load_audio
from audiomnist.infer import Classifier
from audiomnist.recognizer import StringRecognizer

FLOOR = 0.97


def heard(rec: StringRecognizer, waves: list[np.ndarray], sr: int) -> tuple[list[str], np.ndarray]:
    """The string model's digits for each clip, and its most confident digit's confidence (0: none heard)."""
    out = [rec.transcribe(x, sr) for x in waves]
    return [t.digits for t in out], np.array([max((w.confidence for w in t.words), default=0.0) for t in out])


def rule_rows(p_none: np.ndarray, ok: np.ndarray, is_digit: np.ndarray, right: np.ndarray) -> dict:
    """At the loosest p(none) threshold where `ok & p_none < t` keeps FLOOR of the digits: digits kept, their
    accuracy, words kept."""
    for t in np.unique(np.r_[p_none, 1.0 + 1e-9]):
        keep = ok & (p_none < t)
        if keep[is_digit].mean() >= FLOOR:
            d = keep & is_digit
            return {"t": float(t), "digits": keep[is_digit].mean(), "acc": right[d].mean(),
                    "words": keep[~is_digit].mean()}  # fmt: skip
    keep = ok & (p_none < 1.0 + 1e-9)
    return {"t": float("nan"), "digits": keep[is_digit].mean(), "acc": float("nan"), "words": keep[~is_digit].mean()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("digit_run", type=Path, help="a single-digit run with a none class")
    ap.add_argument("string_run", type=Path, help="a string run holding out the same FSDD speaker")
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (fsdd/recordings inside)")
    ap.add_argument("--words", type=Path, required=True, help="non-digit words of held-out voices")
    ap.add_argument("--save", type=Path, help="keep both models' answers per clip here (.npz)")
    args = ap.parse_args()
    clf = Classifier.load(str(args.digit_run))
    rec = StringRecognizer.load(str(args.string_run), backend="torch", threads=1, rescore=None, pace=None)
    sr = clf.sample_rate
    fsdd = held_out_fsdd(args.digit_run, args.data)
    paths = fsdd + sorted(args.words.glob("*.wav"))
    waves = [load_audio(p, sr) for p in paths]
    is_digit = np.arange(len(paths)) < len(fsdd)
    truth = np.array([int(p.stem.split("_")[0]) if d else -2 for p, d in zip(paths, is_digit)])
    p_none, best = answers(clf, waves)
    digits, conf = heard(rec, waves, sr)
    if args.save:
        np.savez(args.save, p_none=p_none, best=best, conf=conf, digits=np.array(digits), truth=truth)
    right = best == truth
    any_digit = np.array([len(s) > 0 for s in digits])
    same = np.array([str(b) in s for b, s in zip(best, digits)])
    single = np.array([s == str(b) for b, s in zip(best, digits)])
    one = np.array([len(s) == 1 for s in digits])
    print(f"string model alone: digits heard as one digit {one[is_digit].mean():.3f}, "
          f"words heard as some digit {any_digit[~is_digit].mean():.3f}")  # fmt: skip
    print("| rule | p(none) threshold | digits kept | right among kept | words kept |")
    print("|---|---|---|---|---|")
    rules = [("single-digit model alone", np.ones(len(paths), bool)), ("+ string model hears a digit", any_digit),
             ("+ string model hears its digit", same), ("+ string model hears only its digit", single)]  # fmt: skip
    for name, ok in rules:
        r = rule_rows(p_none, ok, is_digit, right)
        print(f"| {name} | {r['t']:.3f} | {r['digits']:.3f} | {r['acc']:.3f} | {r['words']:.3f} |")


if __name__ == "__main__":
    main()
